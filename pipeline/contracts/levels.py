"""Compatibility levels, and the file that says which level each subject keeps.

The levels are the registry's (Confluent's names, which Apicurio's ccompat API
speaks too). A level names the directions a new schema must be checked in, and
against which of the earlier versions:

===================  ==============================================  =========================
level                the new schema must ...                         against
===================  ==============================================  =========================
BACKWARD             read events written with the earlier schema     the latest version
FORWARD              be readable by consumers on the earlier schema  the latest version
FULL                 both                                            the latest version
``*_TRANSITIVE``     the same                                        every earlier version
NONE                 nothing                                         -
===================  ==============================================  =========================

``schemas/compatibility.yaml``::

    default: FULL_TRANSITIVE            # every subject, unless named below
    domains:                            # every subject of a domain (the topic's first part)
      shop: FULL_TRANSITIVE
    subjects:                           # one subject (see pipeline.events.naming)
      shop.order.events-shop.events.OrderPlaced: BACKWARD_TRANSITIVE

Why the default is FULL_TRANSITIVE: domain events are the system of record of
event-sourced consumers. They are read long after they are written (a replay
from the beginning reads the first event ever produced with today's code), so a
new schema must read *every* earlier version (BACKWARD_TRANSITIVE), not just
the latest. And consumers deploy on their own schedule, long after the
transformer starts writing a new version, so every earlier schema must read the
new events too (FORWARD_TRANSITIVE). The price is small and paid in the model:
a new field needs a default (``T | None`` gets one), a removed field must have
had one, and an enum that may grow needs a default symbol from its first version.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

__all__ = [
    "COMPATIBILITY_FILE",
    "DEFAULT_LEVEL",
    "CompatibilityConfig",
    "Direction",
    "Level",
    "load_compatibility",
    "parse_level",
]

COMPATIBILITY_FILE = "compatibility.yaml"


class Direction(enum.StrEnum):
    """Who must be able to read what.

    BACKWARD: the new schema reads events written with an earlier one.
    FORWARD: an earlier schema reads events written with the new one.
    """

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"


class Level(enum.StrEnum):
    """A registry compatibility level."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def directions(self) -> tuple[Direction, ...]:
        if self is Level.NONE:
            return ()
        if self.value.startswith("BACKWARD"):
            return (Direction.BACKWARD,)
        if self.value.startswith("FORWARD"):
            return (Direction.FORWARD,)
        return (Direction.BACKWARD, Direction.FORWARD)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


DEFAULT_LEVEL = Level.FULL_TRANSITIVE
"""The level of every event subject the configuration does not name (see the module docstring)."""


def parse_level(value: Any, where: str) -> Level:
    """``value`` as a :class:`Level` (case-insensitive).

    Raises:
        ConfigError: ``value`` is not a level; the message lists the allowed ones.
    """
    try:
        return Level(str(value).strip().upper())
    except ValueError:
        allowed = ", ".join(level.value for level in Level)
        raise ConfigError(
            f"{where}: unknown compatibility level {value!r}; allowed: {allowed}"
        ) from None


@dataclass(frozen=True)
class CompatibilityConfig:
    """Which level each subject keeps: by subject, else by domain, else the default."""

    default: Level = DEFAULT_LEVEL
    domains: Mapping[str, Level] = field(default_factory=dict)
    subjects: Mapping[str, Level] = field(default_factory=dict)
    source: str | None = None

    def level_for(self, subject: str, domain: str | None = None) -> Level:
        if subject in self.subjects:
            return self.subjects[subject]
        if domain is not None and domain in self.domains:
            return self.domains[domain]
        return self.default

    def to_yaml(self) -> str:
        """The file text for this configuration, with its explanation."""
        body = yaml.safe_dump(
            {
                "default": self.default.value,
                "domains": {k: v.value for k, v in sorted(self.domains.items())},
                "subjects": {k: v.value for k, v in sorted(self.subjects.items())},
            },
            sort_keys=False,
        )
        return _HEADER + body


_HEADER = """\
# Compatibility level of each event subject, checked by `cdcflow schemas check`
# and set in the registry by `cdcflow schemas register`.
# Levels: BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL,
# FULL_TRANSITIVE, NONE. A subject takes its own entry under `subjects`, else
# its domain's (the first part of its topic) under `domains`, else `default`.
# The default is FULL_TRANSITIVE: events are replayed long after they are
# written, by consumers that upgrade on their own schedule, so every version
# must read every other (see pipeline/contracts/levels.py).
"""


def load_compatibility(path: Path) -> CompatibilityConfig:
    """Read the compatibility file; a missing file means the documented default.

    Raises:
        ConfigError: the file is not YAML, has unknown keys, or names an unknown level.
    """
    if not path.exists():
        return CompatibilityConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the compatibility file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with default / domains / subjects")
    unknown = set(data) - {"default", "domains", "subjects"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {sorted(unknown)}; allowed: default, domains, subjects"
        )

    def section(name: str) -> dict[str, Level]:
        raw = data.get(name) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: '{name}' must map names to levels")
        return {str(k): parse_level(v, f"{path}: {name}.{k}") for k, v in raw.items()}

    default = (
        parse_level(data["default"], f"{path}: default") if "default" in data else DEFAULT_LEVEL
    )
    return CompatibilityConfig(
        default=default, domains=section("domains"), subjects=section("subjects"), source=str(path)
    )
