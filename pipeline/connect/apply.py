"""Plan and apply: make the deployed connectors what the files declare.

The apply protocol, step by step (nothing on the server changes before step 4):

1. Read every deployed connector's stored config (one ``GET /connectors?expand=info``)
   and compute the plan against the declared connectors.
   Refuse (before anything else) a connector to create or update whose routing
   splits an aggregate of its domain over topics or partitions
   (:mod:`pipeline.connect.routing`), unless ``allow_split_aggregates``.
2. Validate every connector to create or update on the worker
   (``PUT /connector-plugins/{class}/config/validate``). Any field error stops
   here, for all connectors, with Connect's per-field messages.
3. Preflight the source database of every Debezium Postgres connector to create
   or update, with what its domain needs of the captured tables. Any failed
   check stops here.
4. ``PUT /connectors/{name}/config`` for each connector to create or update.
   An unchanged connector gets no request at all, so applying twice is a no-op.
5. With ``prune``, ``DELETE /connectors/{name}`` for each deployed connector no
   longer declared; without it they are only reported.
6. With ``wait``, poll until every declared connector and each of its tasks is
   RUNNING and stays so for ``settle_s`` (a connector someone paused or
   stopped is left as it is), or fail with the trace of the first FAILED part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.connect.checks import PreflightReport, raise_for_failures
from pipeline.connect.client import ConnectClient
from pipeline.connect.domain import DomainCheck, raise_for_split
from pipeline.connect.files import ConnectorSpec
from pipeline.connect.lifecycle import states, wait_for_state
from pipeline.connect.pg import is_postgres_connector
from pipeline.connect.plan import Action, Plan, compute_plan
from pipeline.connect.preflight import run_preflight
from pipeline.connect.secrets import Redactor
from pipeline.connect.validate import ValidationResult, raise_for_errors, validate_connectors
from pipeline.settings import SourceSettings

__all__ = ["ApplyResult", "apply", "deployed_configs", "plan"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def deployed_configs(client: ConnectClient) -> dict[str, dict[str, str]]:
    """Every deployed connector's stored config, by name (one request).

    Raises:
        ConnectError / ConnectUnreachable: from the request.
    """
    expanded = client.list_connectors_expanded("info")
    return {
        name: dict((entry.get("info") or {}).get("config") or {})
        for name, entry in expanded.items()
    }


def plan(
    client: ConnectClient,
    specs: Sequence[ConnectorSpec],
    *,
    prune: bool = False,
    only: Iterable[str] | None = None,
    prune_prefix: str | None = None,
) -> Plan:
    """The plan of declared against deployed; reads the worker, changes nothing.

    Raises:
        ConnectError / ConnectUnreachable: reading the deployed connectors failed.
    """
    return compute_plan(
        specs, deployed_configs(client), prune=prune, only=only, prune_prefix=prune_prefix
    )


@dataclass
class ApplyResult:
    plan: Plan
    validations: list[ValidationResult] = field(default_factory=list)
    preflight: list[PreflightReport] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # connector -> its status once RUNNING (with wait)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    # connector -> why it was not waited for (paused or stopped on purpose)
    not_waited: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "validation": [v.to_dict() for v in self.validations],
            "preflight": [p.to_dict() for p in self.preflight],
            "applied": self.applied,
            "deleted": self.deleted,
            "running": sorted(self.running),
            "not_waited": self.not_waited,
        }


def apply(
    client: ConnectClient,
    specs: Sequence[ConnectorSpec],
    *,
    source: SourceSettings,
    prune: bool = False,
    wait: bool = False,
    timeout_s: float = 300.0,
    settle_s: float = 5.0,
    preflight: bool = True,
    only: Iterable[str] | None = None,
    prune_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
    progress: Progress = _quiet,
    domains: Mapping[str, DomainCheck] | None = None,
    allow_split_aggregates: bool = False,
) -> ApplyResult:
    """Run the apply protocol of this module's docstring.

    ``domains`` holds, by connector name, the check against the domain it feeds
    (:func:`pipeline.connect.domain.with_domain`; its specs carry any derived routing).

    Raises:
        DomainProblem: a connector's routing splits an aggregate (nothing changed).
        ValidationFailed: a connector failed server-side validation (nothing changed).
        PreflightFailed: the source database is not ready (nothing changed).
        ConnectorFailed: with ``wait``, a connector or task FAILED (with its trace).
        ConnectorNotReady: with ``wait``, not RUNNING within ``timeout_s``.
        ConnectError / ConnectUnreachable: a REST request failed.
    """
    redactor = Redactor.for_configs((s.config for s in specs), env)
    result = ApplyResult(plan(client, specs, prune=prune, only=only, prune_prefix=prune_prefix))
    to_put = result.plan.of(Action.CREATE, Action.UPDATE)
    domains = domains or {}
    if not allow_split_aggregates:
        raise_for_split(domains[c.name] for c in to_put if c.name in domains)

    # 2. validate
    result.validations = validate_connectors(client, [c.spec for c in to_put if c.spec], redactor)
    raise_for_errors(result.validations)

    # 3. preflight
    if preflight:
        deployed = {c.name for c in result.plan.changes if c.action is not Action.CREATE}
        for change in to_put:
            assert change.spec is not None
            if is_postgres_connector(change.spec.config):
                progress(f"preflight {change.name}")
                result.preflight.append(
                    run_preflight(
                        change.name,
                        change.spec.config,
                        source,
                        env=env,
                        deployed=change.name in deployed,
                        domain=domains.get(change.name),
                    )
                )
        raise_for_failures(result.preflight)

    # 4. create / update
    for change in to_put:
        assert change.spec is not None
        progress(f"{change.action} {change.name}")
        client.put_config(change.name, {**change.spec.config, "name": change.name})
        result.applied.append(change.name)

    # 5. prune
    for change in result.plan.of(Action.DELETE):
        progress(f"delete {change.name}")
        client.delete(change.name)
        result.deleted.append(change.name)

    # 6. wait
    if wait:
        declared = [c for c in result.plan.changes if c.spec is not None]
        to_wait: list[str] = []
        for change in declared:
            if change.action is Action.CREATE:
                to_wait.append(change.name)
                continue
            connector_state, _ = states(client.status(change.name))
            if connector_state in ("PAUSED", "STOPPED"):
                result.not_waited[change.name] = connector_state
            else:
                to_wait.append(change.name)
        if to_wait:
            progress(f"waiting for {', '.join(to_wait)} to run")
            result.running = wait_for_state(
                client,
                to_wait,
                "RUNNING",
                timeout_s=timeout_s,
                # A task reports RUNNING as soon as it starts, before it has
                # read its offsets or the slot; and after an update the old
                # tasks report RUNNING until they are restarted. Only a
                # RUNNING that holds means the connector runs.
                settle_s=settle_s,
                redactor=redactor,
            )
    return result
