"""Waiting out an outage: call again after 1, 2, 4, 8, 15, 15, ... seconds until it answers.

The transformer's batch and a replay's decode both ride out a registry (or
source database) that does not answer the same way: the failed step is done
again after a delay that doubles up to a cap, and a stop request ends the
wait at once. :func:`retrying` is that loop; the caller says which errors
mean "wait" and how it waits (``threading.Event.wait``, or
:func:`polling` for a stop flag read as a callable).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

__all__ = ["delays", "polling", "retrying"]

FIRST_S = 1.0
CAP_S = 15.0
T = TypeVar("T")


def delays(first: float = FIRST_S, cap: float = CAP_S) -> Iterator[float]:
    """``first``, then each delay doubled, never over ``cap``: 1, 2, 4, 8, 15, 15, ..."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def polling(should_stop: Callable[[], bool], step: float = 0.1) -> Callable[[float], bool]:
    """A ``wait(seconds)`` that checks ``should_stop()`` every ``step``; True when stopped."""

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if should_stop():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(step, left))

    return wait


def retrying(
    call: Callable[[], T],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    *,
    wait: Callable[[float], bool],
    on_retry: Callable[[BaseException, float], None] | None = None,
    first: float = FIRST_S,
    cap: float = CAP_S,
) -> T | None:
    """``call()``, done again after a growing delay while it raises ``retry_on``.

    ``on_retry(exc, delay)`` runs before each wait (to log, or to undo a
    half-done step); ``wait(delay)`` returns True when the caller was asked to
    stop, and then ``retrying`` returns None. Any other error propagates.
    """
    waits = delays(first, cap)
    while True:
        try:
            return call()
        except retry_on as exc:
            delay = next(waits)
            if on_retry is not None:
                on_retry(exc, delay)
            if wait(delay):
                return None
