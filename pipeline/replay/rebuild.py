"""Rebuilding a read model into shadow tables, then swapping them in atomically.

The live read model keeps answering queries (and its runner keeps applying
events) the whole time. The protocol, for generation ``N`` (the projection's
generation + 1):

1. **lock**: take the projection's rebuild lock (one rebuild at a time); drop
   what a crashed rebuild may have left (tables ``*__g<N>``, slot ``g<N>``,
   retired ``*__old*`` tables).
2. **shadow**: create the tables again from the projection's DDL, as
   ``<table>__g<N>``, with their own tracking slot ``g<N>``.
3. **start**: without ``--from``, the shadow starts empty at the beginning of
   every partition. With ``--from T``, it starts as a copy of the newest
   checkpoint that holds no event at or after ``T`` (per partition, the first
   offset at or after ``T`` from ``offsets_for_times``), at that checkpoint's
   positions: a replay from before ``T`` on top of a state known to be right.
4. **fill**: apply everything up to the topics' current ends into the shadow,
   with the same handlers and the same per-batch transaction as a runner (its
   positions in slot ``g<N>``). Repeat while the live runner has moved on by
   more than one batch.
5. **swap**, in one transaction: lock the projection's row (the live runner's
   next batch waits, so live positions stand still); apply into the shadow
   whatever the live model has applied beyond it; copy the shadow's positions
   to the live slot; rename each live table to ``<table>__old<N>`` and each
   shadow table to ``<table>``; bump the generation. Queries that arrive
   during the swap wait for its locks (milliseconds) and then read the new
   tables: PostgreSQL looks the name up again after waiting. If running
   queries hold the tables longer than ``swap_lock_timeout_s``, the swap
   rolls back and is tried again.
6. **retire**: drop the ``__old<N>`` tables in their own transaction.

A crash anywhere before 5 commits leaves the live model untouched; a crash
after it leaves only step 6 undone, which the next rebuild finishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pipeline.replay.decode import EventDecoder
from pipeline.replay.errors import NoCheckpoint, ProjectionError
from pipeline.replay.positions import TP, EndAt, StartAt, format_ms, ms_to_datetime
from pipeline.replay.projection import Projection
from pipeline.replay.runner import RunStats, apply_stream, projection_decoder
from pipeline.replay.store import LIVE, Checkpoint, ReadModelStore, open_store
from pipeline.replay.stream import EventStream
from pipeline.settings import Settings

__all__ = ["RebuildReport", "rebuild"]

log = logging.getLogger("cdcflow.projections")

_FILL_ROUNDS = 5
_SWAP_ATTEMPTS = 20


@dataclass
class RebuildReport:
    """What a rebuild did."""

    projection: str
    generation: int
    from_ms: int | None
    checkpoint: Checkpoint | None
    start: dict[TP, int]
    stats: RunStats
    fill_seconds: float = 0.0
    swap_seconds: float = 0.0
    swap_attempts: int = 0
    caught_up_in_swap: int = 0
    retired: bool = False
    ends: dict[TP, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "generation": self.generation,
            "from": format_ms(self.from_ms) if self.from_ms is not None else None,
            "checkpoint": self.checkpoint.id if self.checkpoint else None,
            "checkpoint_taken_at": self.checkpoint.taken_at.isoformat()
            if self.checkpoint
            else None,
            "start": {f"{t}[{p}]": o for (t, p), o in sorted(self.start.items())},
            "events_applied": self.stats.applied,
            "fill_seconds": round(self.fill_seconds, 3),
            "swap_seconds": round(self.swap_seconds, 3),
            "swap_attempts": self.swap_attempts,
            "caught_up_in_swap": self.caught_up_in_swap,
            "old_tables_dropped": self.retired,
        }


Progress = Callable[[RunStats, EventStream], None]


def rebuild(
    settings: Settings,
    projection: Projection,
    *,
    from_ms: int | None = None,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild ``projection`` into shadow tables and swap them in (see the module's protocol).

    Raises:
        ProjectionBusy: another rebuild of this projection is running.
        NoCheckpoint: ``from_ms`` is given and no checkpoint precedes it.
        HandlerError / EventDecodeError: an event could not be applied; the
            live model is untouched.
        ProjectionError: the database failed, or queries held the tables
            through every swap attempt.
        ReplayError: Kafka failed.
    """
    kafka = settings.kafka.client_config("consumer")
    decoder = projection_decoder(settings, projection)
    try:
        with open_store(settings, projection, "rebuild") as store:
            return _rebuild(store, settings, kafka, decoder, from_ms, progress)
    except psycopg.Error as exc:
        raise ProjectionError(
            f"rebuild of {projection.name} failed in the database: {exc}"
        ) from exc


def _rebuild(
    store: ReadModelStore,
    settings: Settings,
    kafka: dict[str, Any],
    decoder: EventDecoder,
    from_ms: int | None,
    progress: Progress | None,
) -> RebuildReport:
    cfg = settings.projections
    projection = store.projection
    conn = store.conn
    gen = store.generation() + 1
    suffix, slot = f"__g{gen}", f"g{gen}"
    stats = RunStats(projection.name)
    # 1, 2
    with conn.transaction():
        _drop_retired(store)
        store.drop_tables(suffix)
        store.delete_slot(slot)
        store.create_tables(suffix)
    # 3
    checkpoint = None
    if from_ms is not None:
        checkpoint = _checkpoint_before(store, kafka, projection, from_ms)
        _restore(store, checkpoint, suffix, slot)
    report = RebuildReport(projection.name, gen, from_ms, checkpoint, store.positions(slot), stats)
    log.info(
        "rebuilding %s as generation %d from %s",
        projection.name,
        gen,
        f"checkpoint {checkpoint.id} ({checkpoint.taken_at.isoformat()})"
        if checkpoint
        else "the beginning",
    )
    # 4
    started = time.monotonic()
    for _ in range(_FILL_ROUNDS):
        with EventStream(
            kafka,
            projection.topics,
            start=StartAt(offsets=store.positions(slot)),
            end=EndAt(),
            batch_size=cfg.batch_size,
        ) as stream:

            def tick(stream: EventStream = stream) -> None:
                if progress is not None:
                    progress(stats, stream)

            apply_stream(store, stream, decoder, stats, slot=slot, suffix=suffix, after_batch=tick)
            report.ends = dict(stream.end_offsets)
        if _gap(store.positions(LIVE), store.positions(slot)) <= cfg.batch_size:
            break
    report.fill_seconds = time.monotonic() - started
    # 5
    _swap(store, report, kafka, decoder, cfg.swap_lock_timeout_s, cfg.batch_size)
    # 6
    report.retired = _retire(store, gen, cfg.swap_lock_timeout_s)
    return report


def _gap(live: dict[TP, int], shadow: dict[TP, int]) -> int:
    return sum(max(0, off - shadow.get(tp, 0)) for tp, off in live.items())


def _checkpoint_before(
    store: ReadModelStore, kafka: dict[str, Any], projection: Projection, from_ms: int
) -> Checkpoint:
    with EventStream(kafka, projection.topics, start=StartAt.at(from_ms), end=EndAt()) as probe:
        at = dict(probe.start_offsets)
    for ck in store.checkpoints():
        if ck.precedes(at):
            return ck
    raise NoCheckpoint(
        f"projection {projection.name} has no checkpoint from before {format_ms(from_ms)}",
        hint="rebuild without --from (a replay from the beginning), or choose a later time; "
        "runners take checkpoints every projections.checkpoint_every_s, "
        "'cdcflow projections checkpoint' takes one now",
    )


def _restore(store: ReadModelStore, ck: Checkpoint, suffix: str, slot: str) -> None:
    try:
        with store.conn.transaction():
            for bare_ck, bare_shadow in zip(
                store.projection.table_names(f"__ck{ck.id}").values(),
                store.projection.table_names(suffix).values(),
                strict=True,
            ):
                store.execute(
                    f"INSERT INTO {store.q(bare_shadow)} SELECT * FROM {store.q(bare_ck)}"
                )
            store.set_positions(slot, ck.positions)
    except psycopg.Error as exc:
        raise ProjectionError(
            f"checkpoint {ck.id} of {store.name} does not fit the current tables: {exc}",
            hint="the projection's DDL changed since the checkpoint; rebuild without --from",
        ) from exc


def _swap(
    store: ReadModelStore,
    report: RebuildReport,
    kafka: dict[str, Any],
    decoder: EventDecoder,
    lock_timeout_s: float,
    batch_size: int,
) -> None:
    gen, suffix, slot = report.generation, f"__g{report.generation}", f"g{report.generation}"
    started = time.monotonic()
    conn = store.conn
    for attempt in range(1, _SWAP_ATTEMPTS + 1):
        report.swap_attempts = attempt
        try:
            with conn.transaction():
                store.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                store.lock_row("UPDATE")
                live, shadow = store.positions(LIVE), store.positions(slot)
                behind = {tp: off for tp, off in live.items() if off > shadow.get(tp, 0)}
                if behind:
                    before = report.stats.applied
                    with EventStream(
                        kafka,
                        store.projection.topics,
                        start=StartAt(offsets=shadow),
                        end=EndAt(offsets=behind),
                        batch_size=batch_size,
                        partitions=_only(behind),
                    ) as stream:
                        apply_stream(store, stream, decoder, report.stats, slot=slot, suffix=suffix)
                    report.caught_up_in_swap = report.stats.applied - before
                store.copy_positions(slot, LIVE)
                store.delete_slot(slot)
                for bare_live, bare_shadow in zip(
                    store.projection.table_names().values(),
                    store.projection.table_names(suffix).values(),
                    strict=True,
                ):
                    if store.exists(bare_live):
                        store.execute(
                            f"ALTER TABLE {store.q(bare_live)} RENAME TO {bare_live}__old{gen}"
                        )
                    store.execute(f"ALTER TABLE {store.q(bare_shadow)} RENAME TO {bare_live}")
                store.execute(
                    f"UPDATE {store.schema}.projections SET generation = %s, rebuilt_at = now(), "
                    "rebuilt_from = %s, rebuilt_events = %s WHERE name = %s",
                    (gen, ms_to_datetime(report.from_ms), report.stats.applied, store.name),
                )
            report.swap_seconds = time.monotonic() - started
            log.info(
                "projection %s: generation %d swapped in (attempt %d)", store.name, gen, attempt
            )
            return
        except psycopg.errors.LockNotAvailable:
            log.warning(
                "projection %s: queries hold the tables; swap attempt %d rolled back",
                store.name,
                attempt,
            )
            time.sleep(min(0.2 * attempt, 2.0))
    raise ProjectionError(
        f"projection {store.name}: the swap did not get its locks in {_SWAP_ATTEMPTS} attempts",
        hint="long-running queries hold the read model; "
        "raise projections.swap_lock_timeout_s or retry",
    )


def _only(tps: dict[TP, int]) -> Callable[[str, int], list[int]]:
    def select(topic: str, _count: int) -> list[int]:
        return [p for (t, p) in tps if t == topic]

    return select


def _retire(store: ReadModelStore, gen: int, lock_timeout_s: float) -> bool:
    try:
        with store.conn.transaction():
            store.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
            store.drop_tables(f"__old{gen}")
        return True
    except psycopg.errors.LockNotAvailable:
        log.warning(
            "projection %s: old tables still in use; the next rebuild drops them", store.name
        )
        return False


def _drop_retired(store: ReadModelStore) -> None:
    rows = store.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
        (store.schema, f"{store.name}\\_%\\_\\_old%"),
    ).fetchall()
    retired = {f"{bare}__old" for bare in store.projection.table_names().values()}
    for (name,) in rows:
        if any(name.startswith(prefix) and name[len(prefix) :].isdigit() for prefix in retired):
            store.execute(f"DROP TABLE IF EXISTS {store.q(name)}")
