"""Source de-duplication: drop changes Debezium delivers a second time.

Debezium delivers at least once: after a Connect restart it re-sends the
changes since its last flushed offset, as new records at new offsets of the
CDC topic. Kafka transactions cannot see that; the source position can.

Within one CDC topic partition, streamed changes arrive in the source's
commit order, so their position ``(commit_lsn, lsn)`` — Debezium's
``source.sequence``: the LSN of the last commit before the change, and the
change's own LSN — only grows. The state is therefore one high-water mark per
input partition: a streamed change at or below it was already turned into
events and is dropped. The mark is committed as the metadata of the
partition's offset, in the same Kafka transaction as the events it covers,
so it survives restarts and rebalances exactly as the offset does, and is
rebuilt from Kafka (``Consumer.committed``) — never only held in memory.

Snapshot reads (op ``r``) all carry the snapshot's one LSN: they cannot be
ordered by position and are never dropped here (their event ids are still
deterministic, so a consumer can recognise a re-sent snapshot row by id). A
change without a ``commit_lsn`` is never dropped either: without evidence of
a repeat, cdcflow prefers a possible duplicate to a possible loss.
"""

from __future__ import annotations

import json

from pipeline.cdc import Change

__all__ = ["Position", "SourceDedup", "position_of"]

Position = tuple[int, int]
TP = tuple[str, int]
_META_KEY = "hw"


def position_of(change: Change) -> Position | None:
    """The stream position of a streamed change; None for snapshot reads or missing LSNs."""
    src = change.source
    if src.snapshot or src.commit_lsn is None or src.lsn is None:
        return None
    return (src.commit_lsn, src.lsn)


class SourceDedup:
    """High-water marks per input partition, with a pending part for the open batch."""

    def __init__(self) -> None:
        self._committed: dict[TP, Position] = {}
        self._pending: dict[TP, Position] = {}

    def restore(self, tp: TP, metadata: str | None) -> None:
        """Set a partition's mark from its committed offset metadata (as written by :meth:`metadata`)."""
        self._committed.pop(tp, None)
        self._pending.pop(tp, None)
        if not metadata:
            return
        try:
            hw = json.loads(metadata)[_META_KEY]
            self._committed[tp] = (int(hw[0]), int(hw[1]))
        except (ValueError, KeyError, TypeError, IndexError):
            return  # metadata written by someone else: start without a mark

    def forget(self, tp: TP) -> None:
        self._committed.pop(tp, None)
        self._pending.pop(tp, None)

    def mark(self, tp: TP) -> Position | None:
        return self._pending.get(tp, self._committed.get(tp))

    def is_repeat(self, tp: TP, change: Change) -> bool:
        """True when ``change`` is at or below the partition's mark; else advance the mark."""
        pos = position_of(change)
        if pos is None:
            return False
        hw = self.mark(tp)
        if hw is not None and pos <= hw:
            return True
        self._pending[tp] = pos
        return False

    def metadata(self, tp: TP) -> str | None:
        """Offset metadata that carries the partition's mark (pending included)."""
        hw = self.mark(tp)
        return json.dumps({_META_KEY: list(hw)}, separators=(",", ":")) if hw else None

    def commit(self) -> None:
        self._committed.update(self._pending)
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()
