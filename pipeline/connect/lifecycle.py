"""Waiting for a connector to reach a state, and the errors of one that does not."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.connect.client import ConnectClient
from pipeline.connect.secrets import Redactor
from pipeline.errors import ConnectError

__all__ = ["ConnectorFailed", "ConnectorNotReady", "failed_trace", "states", "wait_for_state"]

_TRACE_LINES = 40


class ConnectorFailed(ConnectError):
    """The connector or one of its tasks is FAILED; carries Connect's trace."""

    def __init__(self, name: str, where: str, trace: str) -> None:
        lines = trace.strip().splitlines()
        shown = "\n".join(lines[:_TRACE_LINES])
        more = (
            f"\n    ... ({len(lines) - _TRACE_LINES} more lines)"
            if len(lines) > _TRACE_LINES
            else ""
        )
        super().__init__(
            f"connector {name!r}: {where} FAILED\n{shown}{more}",
            hint=f"fix the cause, then 'cdcflow connectors restart {name} --failed-only' "
            f"(the full trace: cdcflow connectors status {name} -o json)",
        )
        self.name = name
        self.where = where
        self.trace = trace


class ConnectorNotReady(ConnectError):
    """The connector did not reach the wanted state in time."""


def states(status: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The connector's state and its tasks' states from a ``/status`` answer."""
    connector = str((status.get("connector") or {}).get("state", "UNKNOWN"))
    tasks = [str(t.get("state", "UNKNOWN")) for t in status.get("tasks") or []]
    return connector, tasks


def failed_trace(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(where, trace)`` of the first FAILED part (connector first), or None."""
    connector = status.get("connector") or {}
    if connector.get("state") == "FAILED":
        return "the connector", str(connector.get("trace") or "(no trace)")
    for task in status.get("tasks") or []:
        if task.get("state") == "FAILED":
            return f"task {task.get('id')}", str(task.get("trace") or "(no trace)")
    return None


def _reached(status: Mapping[str, Any], want: str) -> bool:
    connector, tasks = states(status)
    if connector != want:
        return False
    if want == "STOPPED":
        # A stopped connector has no tasks at all.
        return not tasks
    return bool(tasks) and all(t == want for t in tasks)


def wait_for_state(
    client: ConnectClient,
    names: Iterable[str],
    want: str = "RUNNING",
    *,
    timeout_s: float = 300.0,
    poll_s: float = 1.0,
    settle_s: float = 0.0,
    redactor: Redactor | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Poll until every named connector and all its tasks are in ``want``.

    ``settle_s`` asks for the state to hold that long: right after a config
    update, the status may still show the tasks from before their restart.
    Returns each connector's last status.

    Raises:
        ConnectorFailed: the connector or a task is FAILED (with its trace).
        ConnectorNotReady: ``timeout_s`` passed first (with the last states).
        ConnectError / ConnectUnreachable: from the status requests.
    """
    scrub = (redactor or Redactor()).scrub
    pending = list(dict.fromkeys(names))
    reached_at: dict[str, float] = {}
    last: dict[str, dict[str, Any]] = {}
    deadline = clock() + timeout_s
    while True:
        for name in list(pending):
            try:
                status = client.status(name)
            except ConnectError as exc:
                if exc.status == 404:  # just created: no status written yet
                    continue
                raise
            last[name] = status
            failed = failed_trace(status)
            # Only a start can fail: a stop or pause ends the tasks either way.
            if failed is not None and want == "RUNNING":
                raise ConnectorFailed(name, failed[0], scrub(failed[1]))
            if not _reached(status, want):
                reached_at.pop(name, None)
                continue
            first = reached_at.setdefault(name, clock())
            if clock() - first >= settle_s:
                pending.remove(name)
        if not pending:
            return last
        if clock() >= deadline:
            described = ", ".join(f"{n}: {_describe(last.get(n))}" for n in pending)
            raise ConnectorNotReady(
                f"not {want} after {timeout_s:.0f}s: {described}",
                hint="see 'cdcflow connectors status' and the Connect worker's log",
            )
        sleep(poll_s)


def _describe(status: Mapping[str, Any] | None) -> str:
    if status is None:
        return "no status yet"
    connector, tasks = states(status)
    return f"connector {connector}, tasks [{', '.join(tasks) or 'none'}]"
