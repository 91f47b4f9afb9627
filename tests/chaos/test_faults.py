"""Effectively once under faults: every source change becomes exactly its events.

Each test runs a workload of shop business operations against the real
stack, injects one kind of fault, and then checks the events of every change
made during the test (read_committed) against the database's own history: no
duplicates, no gaps, order per aggregate intact, no dead letters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.chaos.harness import FaultRun, at_random_times
from tests.support.pipeline import prepare_shop

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def shop(stack: LocalStack, settings: Settings) -> Iterator[Settings]:
    prepare_shop(settings)
    yield settings


def _assert_exact(run: FaultRun) -> None:
    verdict = run.verify()
    assert verdict.expected > 0
    assert (verdict.duplicates, verdict.missing, verdict.unexpected, verdict.out_of_order) == (
        0,
        0,
        0,
        0,
    ), verdict.line()
    assert verdict.found == verdict.expected
    assert run.dead_letters() == 0


def test_transformer_sigkilled_20_times_during_100k_changes(shop: Settings, tmp_path: Path) -> None:
    rng = random.Random(20)
    run = FaultRun(shop, "sigkill", tmp_path)
    run.transformer.start()
    workload, reports = run.workload(count=50_000, rate=3000, seed=11)  # ~2 changes per operation

    def kill_and_restart(i: int) -> None:
        run.transformer.kill()
        run.transformer.start()

    at_random_times(20, (0.5, 3.0), kill_and_restart, rng)
    workload.join()
    history = run.history()
    print(
        f"[sigkill] workload: {reports[0].total} operations, {history.changes} changes in {reports[0].seconds:.0f}s"
    )
    assert history.changes >= 100_000
    _assert_exact(run)
    assert run.transformer.stop() == 0


def test_connect_worker_sigkilled_3_times(
    shop: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    rng = random.Random(3)
    run = FaultRun(shop, "connect", tmp_path)
    run.transformer.start()
    workload, _ = run.workload(count=8_000, rate=400, seed=12)

    def kill_connect(i: int) -> None:
        proc = stack.connect.proc.process()
        assert proc is not None
        proc.kill()  # SIGKILL: Debezium's last offsets are not flushed; it re-sends after restart
        proc.wait(30)
        stack.connect.start(stack.artifacts(), progress=print)
        run_connector_wait(shop)

    at_random_times(3, (3.0, 6.0), kill_connect, rng)
    workload.join()
    _assert_exact(run)
    assert run.transformer.stop() == 0


def run_connector_wait(settings: Settings) -> None:
    from tests.support.pipeline import run_cli

    run_cli("connectors", "apply", "--wait")


def test_kafka_broker_restart(shop: Settings, stack: LocalStack, tmp_path: Path) -> None:
    run = FaultRun(shop, "broker", tmp_path)
    run.transformer.start()
    workload, _ = run.workload(count=6_000, rate=400, seed=13)
    time.sleep(5)
    assert stack.kafka.stop()
    time.sleep(3)
    stack.kafka.start(stack.artifacts(), progress=print)
    workload.join()
    run_connector_wait(shop)
    _assert_exact(run)
    assert run.transformer.stop() == 0


def test_registry_unavailable_for_30_seconds(
    shop: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    run = FaultRun(shop, "registry", tmp_path)
    run.transformer.start()
    workload, _ = run.workload(count=6_000, rate=150, seed=14)
    time.sleep(5)
    assert stack.registry.stop()
    # A fresh transformer has no schema ids cached: it must wait for the registry.
    run.transformer.kill()
    run.transformer.start()
    time.sleep(30)
    stack.registry.start(stack.artifacts(), progress=print)
    workload.join()
    _assert_exact(run)
    log = run.transformer.log.read_text()
    assert "schema registry unavailable" in log
    assert run.transformer.stop() == 0
