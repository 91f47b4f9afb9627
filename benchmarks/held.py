"""Records held in memory for the hot path, and the file that keeps them between runs.

Standard library only: the hot path's baseline runner loads this file by its
path into the interpreter of an older revision of cdcflow (see
:mod:`benchmarks.baseline`), where nothing of today's ``pipeline`` or
``benchmarks`` may be imported.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Held:
    """A consumed record, held in memory with what ``Transformer.process`` asks of it."""

    t: str
    p: int
    o: int
    k: bytes | None
    v: bytes | None

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.v

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def error(self) -> None:
        return None


def read_held(path: Path, count: int | None = None) -> list[Held]:
    """The first ``count`` records kept in ``path`` (all of them when ``count`` is None)."""
    with path.open("rb") as f:
        rows = pickle.load(f)
    return [Held(*row) for row in rows[:count]]


def keep_held(path: Path, records: list[Held]) -> None:
    """Write ``records`` to ``path`` as plain tuples (readable by any revision's runner)."""
    with path.open("wb") as f:
        pickle.dump([(h.t, h.p, h.o, h.k, h.v) for h in records], f)
