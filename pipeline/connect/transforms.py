"""What a connector's transforms do to each table's change records: their topic and partition.

:func:`simulate` follows a config's ``transforms`` chain (with its
predicates) for each table the way Kafka Connect applies it: the topic routers
(``ByLogicalTableRouter``, ``RegexRouter``) rename the topic, ``PartitionRouting``
picks the partition from payload fields; transforms that change neither are
passed; any other makes the route unknown, said so rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.connect.capture import fullmatch as _fullmatch
from pipeline.connect.capture import names as _names

__all__ = [
    "PARTITION_ROUTING",
    "TABLE_ROUTER",
    "TOPIC_MATCHES",
    "Partitioning",
    "Route",
    "simulate",
]

TABLE_ROUTER = "io.debezium.transforms.ByLogicalTableRouter"
PARTITION_ROUTING = "io.debezium.transforms.partitions.PartitionRouting"
_REGEX_ROUTER = "org.apache.kafka.connect.transforms.RegexRouter"
TOPIC_MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
_TOMBSTONE = "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"
# SMTs that change neither the topic nor the partition of a change record.
_NEUTRAL = frozenset(
    {
        "org.apache.kafka.connect.transforms.InsertHeader",
        "org.apache.kafka.connect.transforms.DropHeaders",
        "org.apache.kafka.connect.transforms.HeaderFrom",
    }
)


@dataclass(frozen=True)
class Partitioning:
    """How a table's records are spread over the partitions of their topic."""

    by: Literal["key", "fields", "unknown"]
    """``key`` (the record key's hash), ``fields`` (PartitionRouting) or ``unknown``."""
    columns: tuple[str, ...] = ()
    """``fields``: the columns of ``change.<col>``; ``key``: ``message.key.columns`` if set."""
    num: str | None = None
    hash: str = "java"
    transform: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"by": self.by, "columns": list(self.columns)}
        if self.by == "fields":
            out |= {"partitions": self.num, "hash": self.hash, "transform": self.transform}
        return out


@dataclass(frozen=True)
class Route:
    """One captured table: its topic and partitioning after the transforms chain."""

    table: str
    topic: str | None
    partitioning: Partitioning
    unknown: str | None = None
    """Why the route cannot be told (an SMT or predicate this simulation does not know)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "topic": self.topic,
            "partitioning": self.partitioning.to_dict(),
            "cannot_tell": self.unknown,
        }


def _java_replacement(replacement: str) -> str:
    """A Java ``Matcher.replaceAll`` replacement (``$1``) as a Python one (``\\g<1>``)."""
    out = re.sub(r"\\(.)", lambda m: m[1].replace("\\", "\\\\"), replacement)
    return re.sub(r"\$(\d+)", r"\\g<\1>", out)


def _key_columns(config: Mapping[str, str], table: str) -> tuple[str, ...]:
    # message.key.columns: "<schema.table regex>:<col>,<col>;<regex>:<col>"
    for entry in (config.get("message.key.columns") or "").split(";"):
        pattern, _, cols = entry.strip().partition(":")
        if pattern and _fullmatch(pattern.strip(), table, re.IGNORECASE):
            return tuple(c.strip() for c in cols.split(",") if c.strip())
    return ()


def _predicate_holds(
    config: Mapping[str, str], alias: str, name: str, topic: str
) -> tuple[bool | None, str | None]:
    """Whether transform ``alias``'s predicate holds for a change record on ``topic``."""
    if not name:
        return True, None
    kind = config.get(f"predicates.{name}.type", "")
    negate = (config.get(f"transforms.{alias}.negate") or "false").lower() == "true"
    if kind == TOPIC_MATCHES:
        holds = _fullmatch(config.get(f"predicates.{name}.pattern", ""), topic)
    elif kind == _TOMBSTONE:
        holds = False  # a change record is never a tombstone
    else:
        return None, f"predicate {name} ({kind or 'no type'}) of transform {alias}"
    return holds != negate, None


def simulate(config: Mapping[str, str], tables: Iterable[str]) -> dict[str, Route]:
    """The topic and partitioning of each of ``tables`` (``schema.table``) under ``config``."""
    prefix = config.get("topic.prefix", "")
    aliases = _names(config.get("transforms"))
    routes: dict[str, Route] = {}
    for table in tables:
        topic = f"{prefix}.{table}"
        key = _key_columns(config, table)
        partitioning = Partitioning("key", key)
        unknown: str | None = None
        for alias in aliases:
            holds, why = _predicate_holds(
                config, alias, config.get(f"transforms.{alias}.predicate", ""), topic
            )
            if holds is None:
                unknown = why
                break
            if not holds:
                continue
            kind = config.get(f"transforms.{alias}.type", "")
            at = f"transforms.{alias}."
            if kind in (TABLE_ROUTER, _REGEX_ROUTER):
                regex = config.get(at + ("topic.regex" if kind == TABLE_ROUTER else "regex"), "")
                repl = config.get(
                    at + ("topic.replacement" if kind == TABLE_ROUTER else "replacement"), ""
                )
                if _fullmatch(regex, topic):
                    topic = re.sub(f"^(?:{regex})$", _java_replacement(repl), topic)
                    if kind == TABLE_ROUTER and (
                        config.get(at + "key.enforce.uniqueness", "true").lower() != "false"
                    ):
                        # The router adds the physical table to the key: key hashes differ.
                        partitioning = Partitioning("key", (*key, "__dbz__physicalTableIdentifier"))
            elif kind == PARTITION_ROUTING:
                fields = _names(config.get(at + "partition.payload.fields"))
                columns = tuple(f.removeprefix("change.") for f in fields)
                if not all(f.startswith("change.") for f in fields) or not columns:
                    unknown = f"transform {alias} partitions by {fields or 'nothing'}"
                    break
                partitioning = Partitioning(
                    "fields",
                    columns,
                    config.get(at + "partition.topic.num"),
                    config.get(at + "partition.hash.function", "java"),
                    alias,
                )
            elif kind not in _NEUTRAL:
                unknown = f"transform {alias} ({kind or 'no type'})"
                break
        if unknown is not None:
            routes[table] = Route(table, None, Partitioning("unknown"), unknown)
        else:
            routes[table] = Route(table, topic, partitioning)
    return routes
