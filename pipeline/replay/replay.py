"""A replay: read topics from a start to an end, decode every event, hand them on, count them.

The engine behind ``cdcflow replay`` and anything that wants to run through
history once (an aggregate rebuild, an export): batches are decoded with
:class:`EventDecoder` (fastavro, cached writer schemas), handed to
``on_events``, and counted into a :class:`Summary`; ``on_progress`` is
called after each batch with the :class:`Progress` (events, rate, time left
from the end offsets).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pipeline.replay.decode import EventDecoder
from pipeline.replay.positions import EndAt, StartAt
from pipeline.replay.progress import Progress, Summary
from pipeline.replay.stream import Delivered, EventStream, decode_patiently

__all__ = ["gc_tuned", "replay"]


@contextmanager
def gc_tuned(threshold: int = 200_000) -> Iterator[None]:
    """Fewer cyclic garbage collections while millions of events are decoded.

    Decoding allocates many short-lived objects without reference cycles
    (dicts, Decimals, datetimes, models): reference counting frees them, yet
    every 700 allocations CPython's cyclic collector scans them anyway. A
    replay of the shop's events runs about 40% faster with the objects alive
    before it frozen out of the scans and the first-generation threshold at
    ``threshold`` (``benchmarks/replay_bench.py`` measures both). This changes
    the whole process, so it is for processes that own their GC, such as the
    ``cdcflow replay`` command; the old settings come back on exit.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def replay(
    kafka_config: Mapping[str, Any],
    topics: Sequence[str],
    decoder: EventDecoder,
    *,
    start: StartAt | None = None,
    end: EndAt | None = EndAt(),  # noqa: B008 - frozen
    batch_size: int = 5000,
    on_events: Callable[[list[Delivered]], None] | None = None,
    on_progress: Callable[[Progress, EventStream], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Summary:
    """Read ``topics`` from ``start`` to ``end`` (``None``: follow until stopped), decode all.

    Raises:
        TopicNotFound: a topic does not exist.
        BadPosition / ReplayError: a position is wrong, or Kafka failed.
        EventDecodeError: an event does not decode (unknown types are counted
            as skipped when the decoder skips them).
        RegistryError: the registry does not know a writer schema. (A registry
            that does not answer is waited for, until ``should_stop()``.)
    """
    summary = Summary()
    started = time.monotonic()
    with EventStream(kafka_config, topics, start=start, end=end, batch_size=batch_size) as stream:
        progress = Progress(stream.remaining(), started)
        for batch in stream.batches(should_stop):
            decoded = decode_patiently(decoder, batch, should_stop)
            if decoded is None:
                break
            delivered = decoded
            summary.skipped += len(batch) - len(delivered)
            if delivered:
                summary.per_type.update(Counter(type(d.event).__name__ for d in delivered))
                summary.per_partition.update(Counter(d.tp for d in delivered))
                first = min(d.timestamp_ms for d in delivered)
                last = max(d.timestamp_ms for d in delivered)
                summary.first_ms = (
                    first if summary.first_ms is None else min(summary.first_ms, first)
                )
                summary.last_ms = last if summary.last_ms is None else max(summary.last_ms, last)
                if on_events is not None:
                    on_events(delivered)
            progress.update(summary.events, stream.remaining(), time.monotonic())
            if on_progress is not None:
                on_progress(progress, stream)
    summary.seconds = time.monotonic() - started
    return summary
