"""What a preflight reports: one :class:`Check` per question, a :class:`PreflightReport` per connector.

Each check ends ``ok``, ``warn`` (it works, but something will hurt later),
``fail`` (the connector would fail or break the application) or ``skip`` (it
could not be checked from here); every warning and failure says how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.errors import PreflightFailed

__all__ = ["Check", "Level", "PreflightReport", "raise_for_failures"]


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "level": str(self.level),
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class PreflightReport:
    connector: str
    checks: tuple[Check, ...]
    checked_as: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def at(self, level: Level) -> list[Check]:
        """The checks that ended at ``level``, in the order they ran."""
        return [c for c in self.checks if c.level is level]

    @property
    def failures(self) -> list[Check]:
        return self.at(Level.FAIL)

    @property
    def warnings(self) -> list[Check]:
        return self.at(Level.WARN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "ok": self.ok,
            "checked_as": self.checked_as,
            "checks": [c.to_dict() for c in self.checks],
        }


def raise_for_failures(reports: Iterable[PreflightReport]) -> None:
    """Raise if any report has a failed check.

    Raises:
        PreflightFailed: naming each failed check and its fix.
    """
    lines: list[str] = []
    for report in reports:
        for check in report.failures:
            lines.append(f"  {report.connector}: {check.name}: {check.detail}")
            if check.fix:
                lines.append(f"      fix: {check.fix}")
    if lines:
        raise PreflightFailed(
            "the source database is not ready:\n" + "\n".join(lines),
            hint="fix the checks above and run 'cdcflow connectors preflight' again; "
            "nothing was deployed",
        )
