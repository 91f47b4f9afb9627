"""Writing to the shop's shared tables from tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")


def retry_on_deadlock(fn: Callable[[], T], attempts: int = 5) -> T:
    """``fn()``, again when PostgreSQL aborts it as the victim of a deadlock.

    The shop's tables are shared by the sessions running tests on one stack:
    another session's fixture may re-apply the shop's schema (``ALTER TABLE``)
    or install the audit triggers while a test writes. A deadlock aborts one
    transaction whole, so doing it again is safe, and what an application does.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except psycopg.errors.DeadlockDetected:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")
