"""Deleting a connector, and with it (on request) what Debezium leaves behind.

Deleting a connector in Connect keeps two things: its source offsets (in the
offsets topic, under its name) and, for Debezium Postgres, its replication
slot, which makes the server keep WAL until someone drops it. ``forget``
removes all three, in the only order that works:

1. stop the connector and wait until it is STOPPED (its task lets go of the slot);
2. reset its offsets (Connect allows that only while it is STOPPED), so a
   connector created again under the same name snapshots afresh instead of
   asking for a WAL position the dropped slot no longer holds;
3. delete the connector;
4. drop the replication slot, with the connector's login when it resolves
   here, else with cdcflow's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.connect.client import ConnectClient
from pipeline.connect.lifecycle import wait_for_state
from pipeline.connect.pg import (
    connector_params,
    drop_slot,
    is_postgres_connector,
    open_source,
    slot_name,
)
from pipeline.errors import CdcflowError
from pipeline.settings import SourceSettings

__all__ = ["Removal", "remove_connector"]


@dataclass(frozen=True)
class Removal:
    name: str
    slot: str | None = None  # the Debezium slot, if the connector had one
    slot_dropped: bool | None = None  # None: not asked to drop it
    offsets_reset: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def remove_connector(
    client: ConnectClient,
    name: str,
    *,
    source: SourceSettings,
    forget: bool = False,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Removal:
    """Delete ``name``; with ``forget``, run the whole protocol of this module.

    Raises:
        ConnectError / ConnectUnreachable: a REST request failed (404: no such connector).
        ConnectorNotReady: with ``forget``, the connector did not stop in time.
        CdcflowError: the connector is gone, but its slot could not be dropped
            (the message says how to drop it by hand).
    """
    config = client.get_config(name)
    postgres = is_postgres_connector(config)
    if not forget:
        client.delete(name)
        return Removal(name, slot_name(config) if postgres else None)
    client.stop(name)
    wait_for_state(client, [name], "STOPPED", timeout_s=timeout_s)
    client.reset_offsets(name)
    client.delete(name)
    if not postgres:
        return Removal(name, offsets_reset=True)
    slot = slot_name(config)
    return Removal(name, slot, _drop(config, slot, source, env), offsets_reset=True)


def _drop(
    config: Mapping[str, str], slot: str, source: SourceSettings, env: Mapping[str, str] | None
) -> bool:
    params = connector_params(config, source, env)
    errors: list[str] = []
    for candidate in (params.own, params.fallback):
        if candidate is None:
            continue
        try:
            with open_source(candidate) as conn:
                return drop_slot(conn, slot)
        except (psycopg.Error, TimeoutError) as exc:
            errors.append(f"{candidate.describe()}: {str(exc).strip().splitlines()[0]}")
    raise CdcflowError(
        f"the connector is deleted, but its replication slot {slot!r} could not be dropped: "
        + ("; ".join(errors) or "no database login resolves here"),
        hint=f"as a user with REPLICATION: SELECT pg_drop_replication_slot('{slot}');",
    )
