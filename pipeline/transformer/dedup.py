"""Source de-duplication: drop changes Debezium delivers a second time.

Debezium delivers at least once: after a Connect restart it re-sends the
changes since its last flushed offset, as new records at new offsets of the
CDC topic. Kafka transactions cannot see that; the source position can.

Within one CDC topic partition, streamed changes arrive in the source's
commit order, so their position ``(commit_lsn, lsn, half)`` — Debezium's
``source.sequence``: the LSN of the last commit before the change, and the
change's own LSN; then ``half``, 0 for a delete and 1 otherwise — only grows.
``half`` is there because one WAL record can become two change events: an
UPDATE that changes the primary key is sent as a delete of the old key and a
create of the new one, both at the update's LSN, the delete first. Without
it the create, at the delete's very position, would be taken for a repeat and
its events lost. The state is therefore one high-water mark per
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

Position = tuple[int, int, int]
TP = tuple[str, int]
_META_KEY = "hw"


def position_of(change: Change) -> Position | None:
    """The stream position of a streamed change; None for snapshot reads or missing LSNs."""
    src = change.source
    if src.snapshot or src.commit_lsn is None or src.lsn is None:
        return None
    return (src.commit_lsn, src.lsn, 0 if change.op == "d" else 1)


class SourceDedup:
    """High-water marks per input partition, in three layers.

    - *committed*: marks whose transaction committed (or were restored from Kafka);
    - *sealed*: one set of marks per batch that is processed and whose
      transaction is not committed yet, oldest first (with the commit
      overlapped with processing, the next batch is processed meanwhile);
    - *pending*: the marks of the batch being processed.

    A change is a repeat when it is at or below the newest mark of its
    partition in any layer: the batches ahead of it will either commit, or
    all be rolled back and processed again.
    """

    def __init__(self) -> None:
        self._committed: dict[TP, Position] = {}
        self._sealed: list[dict[TP, Position]] = []
        self._pending: dict[TP, Position] = {}

    def restore(self, tp: TP, metadata: str | None) -> None:
        """Set a partition's mark from its committed offset metadata (as written by :meth:`metadata`)."""
        self.forget(tp)
        if not metadata:
            return
        try:
            hw = json.loads(metadata)[_META_KEY]
            # A mark of two entries was written before the delete/create halves were told
            # apart: taken as a delete's, so the create of a changed key that may follow it
            # is kept (a possible duplicate rather than a possible loss).
            half = int(hw[2]) if len(hw) > 2 else 0
            self._committed[tp] = (int(hw[0]), int(hw[1]), half)
        except (ValueError, KeyError, TypeError, IndexError):
            return  # metadata written by someone else: start without a mark

    def forget(self, tp: TP) -> None:
        """Drop every mark of a partition (it was revoked)."""
        self._committed.pop(tp, None)
        self._pending.pop(tp, None)
        for layer in self._sealed:
            layer.pop(tp, None)

    def mark(self, tp: TP) -> Position | None:
        """The partition's newest mark, in whichever layer."""
        if tp in self._pending:
            return self._pending[tp]
        for layer in reversed(self._sealed):
            if tp in layer:
                return layer[tp]
        return self._committed.get(tp)

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

    def seal(self) -> dict[TP, Position]:
        """End the batch being processed: its marks wait for its transaction.

        Returns the batch's marks, the token :meth:`metadata` and :meth:`commit` take.
        """
        marks = self._pending
        self._sealed.append(marks)
        self._pending = {}
        return marks

    def metadata(self, tp: TP, batch: dict[TP, Position] | None) -> str | None:
        """Offset metadata carrying the partition's mark as of the end of ``batch``.

        Marks of batches processed after ``batch`` are not included: they are
        committed with their own transaction. ``None``: a batch that was not
        de-duplicated; the committed mark is carried on.
        """
        hw = batch.get(tp) if batch is not None else self._committed.get(tp)
        if hw is None and batch is not None:
            older = self._sealed[: self._index(batch)]
            hw = next((m[tp] for m in reversed(older) if tp in m), self._committed.get(tp))
        return json.dumps({_META_KEY: list(hw)}, separators=(",", ":")) if hw else None

    def commit(self, batch: dict[TP, Position]) -> None:
        """``batch``'s transaction committed: its marks are the committed ones now."""
        if self._index(batch) != 0:
            raise AssertionError("batches commit in the order they were sealed")
        self._committed.update(self._sealed.pop(0))

    def rollback(self) -> None:
        """A transaction aborted: every batch not committed is processed again, marks and all."""
        self._pending = {}
        self._sealed.clear()

    def discard_pending(self) -> None:
        """The batch being processed starts over (the registry did not answer)."""
        self._pending = {}

    @property
    def uncommitted(self) -> int:
        """Batches sealed whose transactions have not committed."""
        return len(self._sealed)

    def _index(self, batch: dict[TP, Position]) -> int:
        for i, layer in enumerate(self._sealed):
            if layer is batch:
                return i
        raise AssertionError("not a sealed batch of this de-duplication state")
