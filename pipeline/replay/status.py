"""How far behind each projection is: events and seconds, per partition and in all.

*Events behind* is the partition's end offset minus the projection's next
offset. Offsets count transaction markers too, so while a projection is
behind the figure is an upper bound (by one per transformer transaction);
once it has caught up it is exactly 0, because a runner records the
end-of-partition offset past the trailing markers.

*Seconds behind* is how long the oldest event not yet applied has been
waiting: now minus the Kafka timestamp of the record at the next offset; 0
when nothing is waiting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pipeline.replay.database import connect, read_model_dsn
from pipeline.replay.errors import TopicNotFound
from pipeline.replay.positions import TP, EndAt, StartAt, format_ms
from pipeline.replay.projection import Projection
from pipeline.replay.store import LIVE, ReadModelStore
from pipeline.replay.stream import EventStream
from pipeline.settings import Settings
from pipeline.views import attrs

__all__ = ["PartitionLag", "ProjectionStatus", "projection_status"]


@dataclass
class PartitionLag:
    topic: str
    partition: int
    next_offset: int
    end_offset: int
    applied: int = 0
    last_applied_at: datetime | None = None
    waiting_since_ms: int | None = None

    @property
    def behind(self) -> int:
        return max(0, self.end_offset - self.next_offset)

    def seconds_behind(self, now_ms: int) -> float:
        if self.behind == 0 or self.waiting_since_ms is None:
            return 0.0
        return max(0.0, (now_ms - self.waiting_since_ms) / 1000)


@dataclass
class ProjectionStatus:
    name: str
    topics: list[str]
    generation: int
    running_pid: int | None
    rebuilding_pid: int | None
    checkpoints: int
    newest_checkpoint: datetime | None
    partitions: list[PartitionLag] = field(default_factory=list)
    now_ms: int = 0
    note: str | None = None

    @property
    def behind(self) -> int:
        return sum(p.behind for p in self.partitions)

    @property
    def seconds_behind(self) -> float:
        return max((p.seconds_behind(self.now_ms) for p in self.partitions), default=0.0)

    @property
    def applied(self) -> int:
        return sum(p.applied for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.name,
            **attrs(self, "topics", "generation", "running_pid", "rebuilding_pid", "applied"),
            "events_behind": self.behind,
            "seconds_behind": round(self.seconds_behind, 3),
            "checkpoints": self.checkpoints,
            "newest_checkpoint": self.newest_checkpoint.isoformat()
            if self.newest_checkpoint
            else None,
            "partitions": [
                {
                    **attrs(p, "topic", "partition", "next_offset", "end_offset"),
                    "events_behind": p.behind,
                    "seconds_behind": round(p.seconds_behind(self.now_ms), 3),
                    "oldest_waiting": format_ms(p.waiting_since_ms) if p.behind else None,
                    "applied": p.applied,
                    "last_applied_at": p.last_applied_at.isoformat() if p.last_applied_at else None,
                }
                for p in self.partitions
            ],
        }


def projection_status(
    settings: Settings, projections: Sequence[Projection]
) -> list[ProjectionStatus]:
    """The status of each projection, read from its tracking rows and the topics' ends.

    A projection whose topic does not exist yet has no partitions and a note.

    Raises:
        ProjectionError: the read-model database cannot be reached.
        ReplayError: Kafka did not answer.
    """
    kafka = settings.kafka.client_config("consumer")
    out = []
    with connect(read_model_dsn(settings)) as conn:
        for projection in projections:
            store = ReadModelStore(conn, settings.projections.db_schema, projection)
            with conn.transaction():
                store.ensure_meta()
            rows = {(r["topic"], r["partition"]): r for r in store.position_rows(LIVE)}
            checkpoints = store.checkpoints()
            status = ProjectionStatus(
                name=projection.name,
                topics=list(projection.topics),
                generation=store.generation(),
                running_pid=store.holder("run"),
                rebuilding_pid=store.holder("rebuild"),
                checkpoints=len(checkpoints),
                newest_checkpoint=checkpoints[0].taken_at if checkpoints else None,
            )
            positions = {tp: int(r["next_offset"]) for tp, r in rows.items()}
            try:
                with EventStream(
                    kafka,
                    projection.topics,
                    start=StartAt(offsets=positions),
                    end=EndAt(),
                    batch_size=100,
                ) as stream:
                    waiting = _first_timestamps(stream)
                    for tp, start in sorted(stream.start_offsets.items()):
                        row = rows.get(tp, {})
                        status.partitions.append(
                            PartitionLag(
                                topic=tp[0],
                                partition=tp[1],
                                next_offset=start,
                                end_offset=stream.end_offsets[tp],
                                applied=int(row.get("applied", 0)),
                                last_applied_at=row.get("last_timestamp"),
                                waiting_since_ms=waiting.get(tp),
                            )
                        )
            except TopicNotFound as exc:
                # Nothing to be behind on yet (the transformer has not made the topic).
                status.note = exc.message
            status.now_ms = int(time.time() * 1000)
            out.append(status)
    return out


def _first_timestamps(stream: EventStream) -> dict[TP, int]:
    """The timestamp of the first record each unfinished partition still has to deliver."""
    found: dict[TP, int] = {}
    for batch in stream.batches():
        for msg in batch:
            tp = cast(TP, (msg.topic(), msg.partition()))
            if tp not in found:
                found[tp] = msg.timestamp()[1]
                stream.finish(tp)
    return found
