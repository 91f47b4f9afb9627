"""One benchmark run at a time per stack: the bench names are shared (benchmarks/common.py)."""

from __future__ import annotations

import pytest

from benchmarks.common import BenchBusy, bench_lock
from pipeline.settings import load_settings


def test_a_second_run_on_the_same_stack_is_refused_and_says_who_holds_it() -> None:
    here = load_settings(kafka={"bootstrap_servers": "bench-lock-test:9092"})
    other = load_settings(kafka={"bootstrap_servers": "bench-lock-test-other:9092"})
    with bench_lock(here):
        with pytest.raises(BenchBusy) as busy, bench_lock(here):
            pass
        assert "bench-lock-test:9092" in str(busy.value) and "pid " in str(busy.value)
        with bench_lock(other):  # another stack's names are not this one's
            pass
    with bench_lock(here):  # released when the run ends
        pass
