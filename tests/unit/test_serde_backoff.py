"""The back-off loop shared by the transformer and replay: delays, stop, errors passed on."""

from __future__ import annotations

import itertools

import pytest

from pipeline.serde import RegistryUnavailable
from pipeline.serde.backoff import delays, polling, retrying


def test_delays_double_up_to_the_cap() -> None:
    assert list(itertools.islice(delays(), 7)) == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert list(itertools.islice(delays(first=0.2, cap=2.0), 6)) == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_retrying_calls_again_after_each_delay_until_it_answers() -> None:
    answers = iter([RegistryUnavailable("down"), RegistryUnavailable("down"), "ok"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    waited: list[float] = []
    seen: list[tuple[str, float]] = []
    result = retrying(
        call,
        RegistryUnavailable,
        wait=lambda s: waited.append(s) or False,
        on_retry=lambda exc, delay: seen.append((str(exc), delay)),
    )
    assert result == "ok"
    assert waited == [1.0, 2.0]
    assert seen == [("down", 1.0), ("down", 2.0)]


def test_retrying_returns_none_when_stopped_while_waiting() -> None:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise RegistryUnavailable("down")

    assert retrying(call, RegistryUnavailable, wait=lambda s: len(calls) == 3) is None
    assert len(calls) == 3


def test_retrying_passes_other_errors_on_at_once() -> None:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        retrying(call, RegistryUnavailable, wait=lambda s: False)
    assert calls == [1]


def test_polling_stops_as_soon_as_asked_and_waits_out_the_delay_otherwise() -> None:
    asked: list[int] = []

    def stop_on_third() -> bool:
        asked.append(1)
        return len(asked) >= 3

    assert polling(stop_on_third, step=0.001)(60.0) is True
    assert len(asked) == 3
    assert polling(lambda: False, step=0.001)(0.0) is False
