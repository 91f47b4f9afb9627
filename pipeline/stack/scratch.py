"""A scratch source on the local stack: a database, a replication slot and a connector of its own.

The end-to-end tests and the benchmarks each need a source no one else
writes to: a database of their own on the stack's PostgreSQL, captured by a
Debezium connector of their own (own ``topic.prefix``, slot and publication)
configured as the shipped shop connector is, so the records look exactly like
production ones. :class:`ScratchSource` creates and removes such a database;
:func:`repointed` turns a shipped connector config into one for it.

Removal order matters: a replication slot retains WAL for every database of
the server, so the slot goes first, and the database after it (PostgreSQL
refuses to drop a database a slot belongs to, which makes a dropped database
proof that no slot of it is left).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from psycopg.rows import RowFactory, dict_row, tuple_row

from pipeline.connect.pg import drop_slot
from pipeline.settings import Settings
from pipeline.stack.components import StackPaths

__all__ = ["ScratchSource", "delete_groups", "delete_topics", "repointed"]


class ScratchSource:
    """A database ``database`` on the stack's PostgreSQL, captured through slot ``slot``."""

    def __init__(self, settings: Settings, database: str, slot: str) -> None:
        self.settings = settings
        self.database = database
        self.slot = slot
        self._paths = StackPaths(settings.stack.home.resolve())

    def db(
        self,
        database: str | None = None,
        *,
        user: str = "cdcflow",
        rows: RowFactory[Any] = dict_row,
    ) -> psycopg.Connection[Any]:
        """An autocommit connection to the scratch database (or ``database``) as ``user``.

        ``user`` is ``cdcflow`` (the application's login, from settings) or
        ``debezium`` (the connector's REPLICATION login, from the stack's secrets).
        """
        src = self.settings.source
        password = self._paths.password("debezium") if user == "debezium" else src.secret()
        return psycopg.connect(
            host=src.host,
            port=src.port,
            dbname=database or self.database,
            user=user,
            password=password,
            autocommit=True,
            row_factory=rows,
        )

    def create(self, load: Callable[[psycopg.Connection[Any]], None]) -> None:
        """Create the database, let the connector's login create its publication, run ``load``.

        ``load`` gets a connection to the new database with plain tuple rows.
        """
        with self.db(self.settings.source.database) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
            # Debezium creates the filtered publication: it needs CREATE on the database.
            conn.execute(f'GRANT CREATE ON DATABASE "{self.database}" TO debezium')
        with self.db(rows=tuple_row) as conn:
            load(conn)

    def drop(self, timeout_s: float = 90.0) -> None:
        """Drop the replication slot, then the database; retried while a connector winds down.

        Connect stops a deleted connector's task in the background: for a while
        it may hold a session in the database, or even take its slot again.

        Raises:
            psycopg.Error: the database could still not be dropped after ``timeout_s``.
        """
        base = self.settings.source.database
        deadline = time.monotonic() + timeout_s
        while True:
            with self.db(base, user="debezium") as conn:
                # Only debezium itself (or a superuser) may end its sessions; the
                # database owner's DROP ... WITH (FORCE) may not.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND usename = 'debezium' AND pid <> pg_backend_pid()",
                    (self.database,),
                )
                drop_slot(conn, self.slot, wait_s=30)
            try:
                with self.db(base) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                return
            except (psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


def repointed(
    config: dict[str, str],
    *,
    database: str,
    prefix: str,
    slot: str,
    drop: re.Pattern[str] | None = None,
) -> dict[str, str]:
    """``config`` (a shipped connector's) capturing ``database`` under names of its own.

    Every mention of the old ``topic.prefix`` in topic names and topic regexes
    (routing transforms, predicates) follows the new prefix; keys matching
    ``drop`` are left out. Converters and value handling stay as shipped.
    """
    old = config.get("topic.prefix", "")
    out: dict[str, str] = {}
    for key, value in config.items():
        if drop is not None and drop.match(key):
            continue
        if old:
            value = value.replace(re.escape(old) + r"\.", re.escape(prefix) + r"\.")
            value = value.replace(old + ".", prefix + ".")
        out[key] = value
    out.update(
        {
            "database.dbname": database,
            "topic.prefix": prefix,
            "slot.name": slot,
            "publication.name": slot,
        }
    )
    return out


def _wait_each(futures: dict[str, Future[Any]], timeout_s: float, fine: set[int]) -> None:
    """Wait for each of an admin call's requests; an error whose code is in ``fine`` is no error.

    Raises:
        KafkaException: a request failed otherwise.
    """
    for future in futures.values():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() not in fine:
                raise


def delete_topics(settings: Settings, topics: Iterable[str], timeout_s: float = 60.0) -> None:
    """Delete topics (one already gone is fine) and wait until the broker no longer lists them.

    Raises:
        TimeoutError: a topic is still listed after ``timeout_s``.
    """
    names = list(topics)
    if not names:
        return
    admin = AdminClient(settings.kafka.client_config())
    _wait_each(
        admin.delete_topics(names, operation_timeout=60), 90, {KafkaError.UNKNOWN_TOPIC_OR_PART}
    )
    # Deletion is asynchronous on the broker: wait until the names are gone.
    deadline = time.monotonic() + timeout_s
    while set(names) & set(admin.list_topics(timeout=30).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics still listed after deletion: {names}")
        time.sleep(0.5)


def delete_groups(settings: Settings, groups: Iterable[str]) -> None:
    """Delete consumer groups; one not found, or not empty yet, is left alone.

    A transformer is a static member (``group.instance.id``): it stays in its group
    for ``session.timeout.ms`` after it closed, and waiting that out is not worth
    it; such a group expires with its offsets (``offsets.retention.minutes``).
    """
    names = list(groups)
    if not names:
        return
    admin = AdminClient(settings.kafka.client_config())
    _wait_each(
        admin.delete_consumer_groups(names, request_timeout=30),
        30,
        {KafkaError.GROUP_ID_NOT_FOUND, KafkaError.NON_EMPTY_GROUP},
    )
