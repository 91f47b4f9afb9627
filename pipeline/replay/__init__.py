"""The consumer side: replay event topics, fold aggregates, keep projections (read models).

- :mod:`~pipeline.replay.decode` — Avro values -> pydantic events (fastavro, cached writer
  schemas), with :mod:`~pipeline.replay.upcast` for older versions.
- :mod:`~pipeline.replay.stream` — reading whole topics by manual assignment, from a
  beginning, a timestamp or offsets, to an end or for ever.
- :mod:`~pipeline.replay.replay` — a replay with progress and a summary (``cdcflow replay``).
- :mod:`~pipeline.replay.aggregate` — ``fold(apply, events)`` and a repository that loads
  one aggregate by reading its partition.
- :mod:`~pipeline.replay.projection`, :mod:`~pipeline.replay.store`,
  :mod:`~pipeline.replay.runner`, :mod:`~pipeline.replay.rebuild`,
  :mod:`~pipeline.replay.status` — projections into PostgreSQL with tracking positions
  in the same transaction, checkpoints, rebuild-and-swap, lag (``cdcflow projections``).

A domain's own aggregates and projections live in its package, beside its events
(the bundled example's: under ``pipeline/domains/``).
"""

from pipeline.replay import errors
from pipeline.replay.aggregate import AggregateRepository, Apply, fold, murmur2, partition_for_key
from pipeline.replay.decode import EventDecoder
from pipeline.replay.errors import *  # noqa: F403  (the names of errors.__all__)
from pipeline.replay.positions import TP, EndAt, StartAt, parse_offsets, parse_timestamp
from pipeline.replay.progress import Progress, Summary
from pipeline.replay.projection import Projection, Tx, load_projections, load_upcasters
from pipeline.replay.rebuild import RebuildReport, rebuild
from pipeline.replay.replay import gc_tuned, replay
from pipeline.replay.runner import (
    RunStats,
    make_decoder,
    projection_decoder,
    run_projection,
    run_projections,
)
from pipeline.replay.status import ProjectionStatus, projection_status
from pipeline.replay.store import Checkpoint, ReadModelStore
from pipeline.replay.stream import Delivered, EventStream, decode_batch
from pipeline.replay.upcast import Upcasters
from pipeline.serde.reader import SchemaLookup, registry_lookup

__all__ = [
    "TP",
    "AggregateRepository",
    "Apply",
    "Checkpoint",
    "Delivered",
    "EndAt",
    "EventDecoder",
    "EventStream",
    "Progress",
    "Projection",
    "ProjectionStatus",
    "ReadModelStore",
    "RebuildReport",
    "RunStats",
    "SchemaLookup",
    "StartAt",
    "Summary",
    "Tx",
    "Upcasters",
    "decode_batch",
    "fold",
    "gc_tuned",
    "load_projections",
    "load_upcasters",
    "make_decoder",
    "murmur2",
    "parse_offsets",
    "parse_timestamp",
    "partition_for_key",
    "projection_decoder",
    "projection_status",
    "rebuild",
    "registry_lookup",
    "replay",
    "run_projection",
    "run_projections",
]
__all__ += errors.__all__
