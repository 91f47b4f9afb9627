"""The signal channel a backfill needs, derived from one line of a connector file.

A Debezium PostgreSQL connector takes an incremental snapshot when a row
``(id, 'execute-snapshot', data)`` arrives in its *signal table*, and it writes
the snapshot's watermarks to that same table: the table must be captured (in
the publication), or the connector never sees either. A connector file asks
for backfills with one line::

    signal.data.collection: public.cdcflow_signal

and :func:`derive_signals` adds what goes with it, each key only where the
file does not set it:

- ``table.include.list`` gets the signal table when no entry matches it;
- a ``Filter`` transform (first in the chain) drops the signal table's own
  change records, so the transformer never sees a table of no domain;
- ``notification.enabled.channels: sink`` and ``notification.sink.topic.name``
  (``__cdcflow-notifications.<topic.prefix>``): Debezium reports each
  snapshot's progress there, and ``cdcflow connectors snapshot`` reads it.

The signal table itself is the application's (create it with
:data:`SIGNAL_TABLE_DDL`); the connector's login needs INSERT on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline.connect.capture import captured_tables, names
from pipeline.connect.pg import is_postgres_connector

__all__ = [
    "DROP_SIGNALS",
    "NOTIFICATIONS_PREFIX",
    "SIGNAL_KEY",
    "SIGNAL_TABLE_DDL",
    "derive_signals",
    "notification_topic",
    "signal_table",
]

SIGNAL_KEY = "signal.data.collection"
NOTIFICATIONS_PREFIX = "__cdcflow-notifications"
DROP_SIGNALS = "cdcflowDropSignals"
_IS_SIGNAL = "cdcflowIsSignalTable"
_FILTER = "org.apache.kafka.connect.transforms.Filter"
_TOPIC_MATCHES = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"

SIGNAL_TABLE_DDL = """\
CREATE TABLE IF NOT EXISTS {table} (
  id    varchar(42) PRIMARY KEY,
  type  varchar(32) NOT NULL,
  data  varchar(2048)
)"""
"""Debezium's signal table; ``{table}`` is the ``schema.table`` of ``signal.data.collection``."""


def signal_table(config: Mapping[str, str]) -> str | None:
    """The connector's signal table (``schema.table``), or None when it has none."""
    return config.get(SIGNAL_KEY) or None


def notification_topic(config: Mapping[str, str]) -> str:
    """The topic Debezium writes the connector's notifications to."""
    return config.get("notification.sink.topic.name") or (
        f"{NOTIFICATIONS_PREFIX}.{config.get('topic.prefix', '')}"
    )


def derive_signals(config: Mapping[str, str]) -> dict[str, str]:
    """The keys a connector with ``signal.data.collection`` needs for backfills (see the module).

    Returns only keys to add or replace; empty for a connector without a signal
    table or not Debezium's PostgreSQL connector.
    """
    table = signal_table(config)
    if table is None or not is_postgres_connector(config):
        return {}
    derived: dict[str, str] = {}
    if "notification.enabled.channels" not in config:
        derived["notification.enabled.channels"] = "sink"
    if "notification.sink.topic.name" not in config:
        derived["notification.sink.topic.name"] = notification_topic(config)
    includes = names(config.get("table.include.list"))
    if includes and not captured_tables(config, [table]):
        derived["table.include.list"] = ",".join([*includes, re.escape(table)])
    transforms = names(config.get("transforms"))
    if DROP_SIGNALS not in transforms:
        # First in the chain: the routing transforms after it may rename the topic.
        derived["transforms"] = ",".join([DROP_SIGNALS, *transforms])
        derived[f"transforms.{DROP_SIGNALS}.type"] = _FILTER
        derived[f"transforms.{DROP_SIGNALS}.predicate"] = _IS_SIGNAL
        predicates = names(config.get("predicates"))
        if _IS_SIGNAL not in predicates:  # a config copied from a derived one has it already
            derived["predicates"] = ",".join([*predicates, _IS_SIGNAL])
        derived[f"predicates.{_IS_SIGNAL}.type"] = _TOPIC_MATCHES
        derived[f"predicates.{_IS_SIGNAL}.pattern"] = re.escape(
            f"{config.get('topic.prefix', '')}.{table}"
        )
    return derived
