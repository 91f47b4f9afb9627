"""Running projections: follow their topics and apply each batch with its positions.

A runner owns one projection: it takes the projection's run lock (a second
runner fails with :class:`ProjectionBusy` instead of interleaving), reads the
tracked positions, assigns every partition at its tracked next offset
(``last applied + 1``; the beginning for a partition never seen), and then
loops: read a batch, decode it, apply it with the new positions in one
database transaction (:meth:`ReadModelStore.apply`). When
``checkpoint_every_s`` has passed it copies the read model as a checkpoint,
between two batches, for ``rebuild --from``.

What a runner does not do: retry a failing handler or skip an undecodable
event. Either stops it with the record named, and nothing of that batch is
kept; a restart resumes at the same event once the cause is fixed. Only a
registry that does not answer is waited out (the batch is kept in memory and
decoded again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.domain import domain_events
from pipeline.events import DomainEvent
from pipeline.replay.decode import EventDecoder
from pipeline.replay.positions import TP, StartAt
from pipeline.replay.projection import Projection, load_upcasters
from pipeline.replay.store import LIVE, ReadModelStore, open_store
from pipeline.replay.stream import EventStream, decode_patiently
from pipeline.replay.upcast import Upcasters
from pipeline.serde.reader import registry_lookup
from pipeline.settings import Settings
from pipeline.views import attrs

__all__ = [
    "RunStats",
    "apply_stream",
    "make_decoder",
    "projection_decoder",
    "run_projection",
    "run_projections",
]

log = logging.getLogger("cdcflow.projections")


@dataclass
class RunStats:
    """What a runner (or a rebuild's fill) did."""

    name: str
    applied: int = 0
    repeated: int = 0
    batches: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    error: BaseException | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.name,
            **attrs(self, "applied", "repeated", "batches", "checkpoints"),
            "seconds": round(self.seconds, 2),
            "error": str(self.error) if self.error else None,
        }


def make_decoder(
    settings: Settings,
    event_types: Iterable[type[DomainEvent]] | None = None,
    *,
    upcasters: Upcasters | None = None,
    skip_unknown: bool = False,
) -> EventDecoder:
    """A decoder for ``event_types`` (default: every event of ``settings.transformer.domain``).

    A projection's decoder knows the types it handles and skips the others
    without decoding them (their positions still advance).

    Raises:
        ConfigError: the domain module cannot be imported.
    """
    types = (
        list(event_types) if event_types is not None else domain_events(settings.transformer.domain)
    )
    lookup = registry_lookup(SchemaRegistryClient(settings.registry.client_config()))
    return EventDecoder(types, lookup, upcasters, skip_unknown=skip_unknown)


def projection_decoder(
    settings: Settings, projection: Projection, upcasters: Upcasters | None = None
) -> EventDecoder:
    """The decoder a projection reads with: its handled types, others skipped undecoded.

    ``upcasters``: those of ``settings.projections.modules`` unless given.
    """
    if upcasters is None:
        upcasters = load_upcasters(settings.projections.modules)
    return make_decoder(settings, projection.event_types, upcasters=upcasters, skip_unknown=True)


def apply_stream(
    store: ReadModelStore,
    stream: EventStream,
    decoder: EventDecoder,
    stats: RunStats,
    *,
    slot: str = LIVE,
    suffix: str = "",
    should_stop: Callable[[], bool] = lambda: False,
    after_batch: Callable[[], None] | None = None,
) -> None:
    """Apply what ``stream`` reads to ``slot`` (tables with ``suffix``), batch by batch.

    Raises:
        HandlerError: a handler failed (that batch is not kept).
        EventDecodeError: an event does not decode (that batch is not applied).
        ProjectionError: the database failed.
    """
    written: dict[TP, int] = dict(stream.positions)
    for batch in stream.batches(should_stop):
        delivered = decode_patiently(decoder, batch, should_stop) if batch else []
        if delivered is None:
            return
        # Positions the reader reached without an event to show (unknown
        # types, trailing transaction markers) are written too, so a caught-up
        # projection sits exactly at the end and its lag reads 0.
        advanced = {tp: off for tp, off in stream.positions.items() if off > written.get(tp, -1)}
        if delivered or advanced:
            result = store.apply(delivered, advanced, slot=slot, suffix=suffix)
            written.update(advanced)
            stats.applied += result.applied
            stats.repeated += result.repeated
            stats.batches += 1
        if after_batch is not None:
            after_batch()


def run_projection(
    settings: Settings,
    projection: Projection,
    stop: threading.Event,
    *,
    decoder: EventDecoder | None = None,
    stop_when_idle_s: float | None = None,
) -> RunStats:
    """Run one projection until ``stop`` is set (or it has been idle ``stop_when_idle_s``).

    Raises:
        ProjectionBusy: another runner holds the projection.
        ProjectionError: the database cannot be reached or failed.
        HandlerError / EventDecodeError: an event could not be applied (the
            runner stops at it; a restart resumes there).
        ReplayError: Kafka failed, or a tracked position was deleted by retention.
    """
    stats = RunStats(projection.name)
    started = time.monotonic()
    decoder = decoder or projection_decoder(settings, projection)
    try:
        with open_store(settings, projection, "run") as store:
            _follow(settings, store, decoder, stats, stop, stop_when_idle_s)
    finally:
        stats.seconds = time.monotonic() - started
    return stats


def _follow(
    settings: Settings,
    store: ReadModelStore,
    decoder: EventDecoder,
    stats: RunStats,
    stop: threading.Event,
    stop_when_idle_s: float | None,
) -> None:
    cfg = settings.projections
    projection = store.projection
    positions = store.positions(LIVE)
    log.info(
        "projection %s starts at %s",
        projection.name,
        ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(positions.items())) or "the beginning",
    )
    last_checkpoint = time.monotonic()
    last_progress = [time.monotonic(), 0.0]

    def housekeeping() -> None:
        nonlocal last_checkpoint
        now = time.monotonic()
        if stats.applied != last_progress[1]:
            last_progress[:] = [now, stats.applied]
        if cfg.checkpoint_every_s and now - last_checkpoint >= cfg.checkpoint_every_s:
            ck = store.checkpoint(cfg.checkpoints_keep)
            stats.checkpoints += 1
            last_checkpoint = now
            log.info("projection %s: checkpoint %d taken", projection.name, ck.id)

    def should_stop() -> bool:
        if stop.is_set():
            return True
        idle = time.monotonic() - last_progress[0]
        return stop_when_idle_s is not None and idle >= stop_when_idle_s

    with EventStream(
        settings.kafka.client_config("consumer"),
        projection.topics,
        start=StartAt(offsets=positions),
        end=None,
        batch_size=cfg.batch_size,
        group_id=f"{cfg.group_prefix}-{projection.name}",
    ) as stream:
        apply_stream(
            store, stream, decoder, stats, should_stop=should_stop, after_batch=housekeeping
        )


def run_projections(
    settings: Settings,
    projections: Sequence[Projection],
    stop: threading.Event,
    *,
    stop_when_idle_s: float | None = None,
    upcasters: Upcasters | None = None,
    stop_all_on_error: bool = False,
) -> list[RunStats]:
    """Run several projections, one thread each, until ``stop`` is set.

    A projection that fails stops; its error is in its :attr:`RunStats.error`
    (and logged). The others go on, or, with ``stop_all_on_error``, stop too
    (``stop`` is set): a process that exits on the first failure is what a
    supervisor notices and restarts.
    """
    results: list[RunStats] = [RunStats(p.name) for p in projections]

    def one(i: int, projection: Projection) -> None:
        try:
            decoder = projection_decoder(settings, projection, upcasters)
            results[i] = run_projection(
                settings, projection, stop, decoder=decoder, stop_when_idle_s=stop_when_idle_s
            )
        except Exception as exc:
            log.error("projection %s stopped: %s", projection.name, exc)
            results[i].error = exc
            if stop_all_on_error:
                stop.set()

    threads = [
        threading.Thread(target=one, args=(i, p), name=f"projection-{p.name}", daemon=True)
        for i, p in enumerate(projections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
