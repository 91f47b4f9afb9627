"""The semantic diff of declared connectors against the deployed ones (pure).

Compared key by key, not as text: key order does not matter, keys the server
adds (``name``) are ignored, and every value that is a placeholder or sits
under a secret-looking key is masked in anything shown (:meth:`Plan.to_dict`,
:meth:`FieldChange.shown`). A masked value that changed is still reported as
changed: the comparison uses the real strings, only the display is masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.connect.files import ConnectorSpec
from pipeline.connect.secrets import has_placeholder, is_secret_key, is_sensitive, mask_value

__all__ = ["SERVER_ADDED_KEYS", "Action", "ConnectorChange", "FieldChange", "Plan", "compute_plan"]

# Connect writes the connector's name into its stored config.
SERVER_ADDED_KEYS = frozenset({"name"})


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # deployed, not declared, and --prune given
    UNDECLARED = "undeclared"  # deployed, not declared, kept (no --prune)
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class FieldChange:
    """One config key that differs; ``None`` means the key is absent on that side."""

    key: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "add"
        if self.after is None:
            return "remove"
        return "change"

    @property
    def sensitive(self) -> bool:
        return is_sensitive(self.key, self.before) or is_sensitive(self.key, self.after)

    def shown(self) -> tuple[str | None, str | None]:
        """``(before, after)`` as they may be displayed: each sensitive side masked."""
        return mask_value(self.key, self.before), mask_value(self.key, self.after)

    def note(self) -> str | None:
        """Why a value is masked, for people reading the plan."""
        if not self.sensitive:
            return None
        values = [v for v in (self.before, self.after) if v is not None]
        if any(has_placeholder(v) for v in values):
            return "placeholder"
        return "secret" if is_secret_key(self.key) else None

    def to_dict(self) -> dict[str, Any]:
        before, after = self.shown()
        return {
            "key": self.key,
            "kind": self.kind,
            "before": before,
            "after": after,
            "masked": self.sensitive,
        }


@dataclass(frozen=True)
class ConnectorChange:
    name: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    spec: ConnectorSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "action": str(self.action)}
        if self.spec is not None:
            out["file"] = str(self.spec.source)
            if self.spec.overlay is not None:
                out["overlay"] = str(self.spec.overlay)
        derived = self.spec.derived if self.spec is not None else {}
        out["fields"] = [
            f.to_dict() | ({"derived": derived[f.key]} if f.key in derived else {})
            for f in self.fields
        ]
        return out


@dataclass(frozen=True)
class Plan:
    changes: tuple[ConnectorChange, ...]
    prune: bool = False

    def of(self, *actions: Action) -> list[ConnectorChange]:
        return [c for c in self.changes if c.action in actions]

    @property
    def pending(self) -> list[ConnectorChange]:
        """What apply would change on the server."""
        return self.of(Action.CREATE, Action.UPDATE, Action.DELETE)

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def summary(self) -> dict[str, int]:
        return {str(a): len(self.of(a)) for a in Action}

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes_pending": self.has_changes,
            "prune": self.prune,
            "summary": self.summary(),
            "connectors": [c.to_dict() for c in self.changes],
        }


def diff_config(desired: Mapping[str, str], deployed: Mapping[str, str]) -> tuple[FieldChange, ...]:
    """The keys that differ, sorted by key; server-added keys are ignored."""
    keys = (set(desired) | set(deployed)) - SERVER_ADDED_KEYS
    changes = [
        FieldChange(key, deployed.get(key), desired.get(key))
        for key in sorted(keys)
        if desired.get(key) != deployed.get(key)
    ]
    return tuple(changes)


def compute_plan(
    desired: Sequence[ConnectorSpec],
    deployed: Mapping[str, Mapping[str, str]],
    *,
    prune: bool = False,
    only: Iterable[str] | None = None,
    prune_prefix: str | None = None,
) -> Plan:
    """Compare ``desired`` with ``deployed`` (name -> stored config).

    With ``only``, just those connector names are planned and undeclared
    connectors are not looked at (a partial plan never deletes). With
    ``prune_prefix``, only undeclared connectors whose name starts with it are
    deleted by a prune; the others are reported as undeclared, as without prune.
    """
    selected = set(only) if only else None
    changes: list[ConnectorChange] = []
    for spec in sorted(desired, key=lambda s: s.name):
        if selected is not None and spec.name not in selected:
            continue
        current = deployed.get(spec.name)
        if current is None:
            fields = tuple(FieldChange(k, None, v) for k, v in sorted(spec.config.items()))
            changes.append(ConnectorChange(spec.name, Action.CREATE, fields, spec))
            continue
        fields = diff_config(spec.config, current)
        action = Action.UPDATE if fields else Action.UNCHANGED
        changes.append(ConnectorChange(spec.name, action, fields, spec))
    if selected is None:
        declared = {s.name for s in desired}
        for name in sorted(set(deployed) - declared):
            current = deployed[name]
            fields = tuple(
                FieldChange(k, v, None)
                for k, v in sorted(current.items())
                if k not in SERVER_ADDED_KEYS
            )
            owned = prune and (prune_prefix is None or name.startswith(prune_prefix))
            action = Action.DELETE if owned else Action.UNDECLARED
            changes.append(ConnectorChange(name, action, fields if owned else (), None))
    return Plan(tuple(changes), prune)
