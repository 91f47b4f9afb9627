"""Connector status: states, workers, traces, and for Debezium Postgres the slot's WAL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import psycopg

from pipeline.connect.client import ConnectClient
from pipeline.connect.pg import (
    ConnParams,
    SlotInfo,
    connector_params,
    is_postgres_connector,
    open_source,
    slot_info,
    slot_name,
)
from pipeline.connect.secrets import Redactor
from pipeline.errors import ConnectError
from pipeline.settings import SourceSettings
from pipeline.views import attrs

__all__ = ["ConnectorStatus", "TaskStatus", "collect_status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker_id: str | None
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    type: str | None
    state: str
    worker_id: str | None
    trace: str | None = None
    tasks: tuple[TaskStatus, ...] = ()
    slot_name: str | None = None
    slot: SlotInfo | None = None
    # Why the slot could not be read (the database was unreachable, ...).
    slot_error: str | None = None
    declared: bool | None = None

    @property
    def healthy(self) -> bool:
        return self.state != "FAILED" and all(t.state != "FAILED" for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return attrs(self, "name", "type", "state", "worker_id", "trace") | {
            "tasks": [asdict(t) for t in self.tasks],
            "declared": self.declared,
            "replication_slot": None
            if self.slot_name is None
            else {
                "name": self.slot_name,
                "exists": self.slot is not None,
                **(self.slot.to_dict() if self.slot else {}),
                "error": self.slot_error,
            },
        }


def _from_rest(
    name: str, info: Mapping[str, Any], status: Mapping[str, Any], scrub: Callable[[str], str]
) -> ConnectorStatus:
    connector = status.get("connector") or {}
    tasks = tuple(
        TaskStatus(
            int(t.get("id", 0)),
            str(t.get("state")),
            t.get("worker_id"),
            scrub(t["trace"]) if t.get("trace") else None,
        )
        for t in sorted(status.get("tasks") or [], key=lambda t: int(t.get("id", 0)))
    )
    trace = connector.get("trace")
    return ConnectorStatus(
        name=name,
        type=status.get("type") or info.get("type"),
        state=str(connector.get("state", "UNKNOWN")),
        worker_id=connector.get("worker_id"),
        trace=scrub(trace) if trace else None,
        tasks=tasks,
    )


class _Slots:
    """Reads slots, one connection per database login, reused across connectors."""

    def __init__(self, source: SourceSettings, env: Mapping[str, str] | None) -> None:
        self.source = source
        self.env = env
        self._conns: dict[ConnParams, Any] = {}

    def read(self, config: Mapping[str, str]) -> tuple[SlotInfo | None, str | None]:
        params = connector_params(config, self.source, self.env)
        errors: list[str] = []
        for candidate in (params.own, params.fallback):
            if candidate is None:
                continue
            try:
                conn = self._conns.get(candidate) or open_source(candidate)
                self._conns[candidate] = conn
                return slot_info(conn, slot_name(config)), None
            except psycopg.Error as exc:
                errors.append(f"{candidate.describe()}: {str(exc).strip().splitlines()[0]}")
        if not errors:
            return None, "the database host, port or name does not resolve here"
        return None, "; ".join(errors)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


def collect_status(
    client: ConnectClient,
    names: Iterable[str] | None = None,
    *,
    source: SourceSettings | None = None,
    env: Mapping[str, str] | None = None,
    declared: Iterable[str] | None = None,
    redactor: Redactor | None = None,
) -> list[ConnectorStatus]:
    """The status of the named connectors (default: every deployed one).

    With ``source``, the replication slot of each Debezium Postgres connector
    is read from ``pg_replication_slots``; a database that cannot be reached is
    reported in ``slot_error``, not raised.

    Raises:
        ConnectError: a named connector does not exist (404), or Connect failed.
        ConnectUnreachable: the worker did not answer.
    """
    scrub = (redactor or Redactor()).scrub
    expanded = client.list_connectors_expanded("info", "status")
    wanted = list(dict.fromkeys(names)) if names else sorted(expanded)
    missing = [n for n in wanted if n not in expanded]
    if missing:
        raise ConnectError(
            f"no connector named {', '.join(missing)} on the worker",
            status=404,
            hint="'cdcflow connectors status' lists the deployed connectors",
        )
    declared_set = set(declared) if declared is not None else None
    slots = _Slots(source, env) if source is not None else None
    out: list[ConnectorStatus] = []
    try:
        for name in wanted:
            info = expanded[name].get("info") or {}
            config = info.get("config") or {}
            status = _from_rest(name, info, expanded[name].get("status") or {}, scrub)
            extra: dict[str, Any] = {}
            if declared_set is not None:
                extra["declared"] = name in declared_set
            if is_postgres_connector(config):
                extra["slot_name"] = slot_name(config)
                if slots is not None:
                    extra["slot"], extra["slot_error"] = slots.read(config)
            out.append(replace(status, **extra))
    finally:
        if slots is not None:
            slots.close()
    return out
