"""Effectively once under faults: every source change becomes exactly its events.

Each test runs a workload of shop business operations against the real
stack and injects one kind of fault when the workload has made a given number
of changes, so that every fault lands while it writes (each test asserts how
many changes were made during each fault, and that the workload was still
writing when the fault ended). Then, once the pipeline is idle, it reads every
event topic to its end (read_committed) and compares each event's payload,
and the order per aggregate, with the database's own history
(tests/support/oracle.py): no duplicates, no gaps, no wrong value, order per
aggregate intact, no dead letters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.chaos.harness import FaultRun, WorkloadThread, bring_back
from tests.support.pipeline import prepare_shop, run_cli

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def shop(stack: LocalStack, settings: Settings) -> Iterator[Settings]:
    prepare_shop(settings)
    yield settings


def _report(run: FaultRun, workload: WorkloadThread) -> int:
    """Join the workload (its error fails the test); print and return the changes made."""
    report = workload.join()
    changes = run.changes()
    print(
        f"[{run.name}] workload: {report.total} operations ({sum(report.skipped.values())} "
        f"skipped), {changes} changes in {report.seconds:.0f}s, "
        f"{workload.deadlocks} deadlock victims retried",
        flush=True,
    )
    return changes


# Each kill waits for the restarted process to have its partitions back: on 2
# cores shared with other test sessions the 20 kills took longer than the
# session's 900 s guard against hangs.
@pytest.mark.timeout(2400)
def test_transformer_sigkilled_20_times_during_100k_changes(shop: Settings, tmp_path: Path) -> None:
    rng = random.Random(20)
    with FaultRun(shop, "sigkill", tmp_path) as run:
        run.transformer.start()
        run.transformer.wait_for_log("assigned ")
        with run.workload(rate=600, seed=11, min_ops=50_000) as workload:
            for i in range(20):
                # Kills spread over the first 90,000 changes, each while the
                # restarted process works (it has its partitions back).
                run.wait_changes(4_000 + 4_500 * i, workload)
                time.sleep(rng.uniform(0.2, 1.5))
                with run.fault(f"kill {i + 1}", workload):
                    run.transformer.kill()
                    run.transformer.start()
                    run.transformer.wait_for_log("assigned ")
            workload.finish(tail_ops=2_000)
            changes = _report(run, workload)
        assert changes >= 100_000
        run.assert_faults_inside(20, floor_each=100)
        first, last = run.faults[0], run.faults[-1]
        assert last.until - first.at >= 80_000, "changes made between the first and last kill"
        run.assert_exact()
        assert run.transformer.starts == 21
        assert run.transformer.stop() == 0


def test_connect_worker_sigkilled_3_times(
    shop: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    with FaultRun(shop, "connect", tmp_path) as run:
        run.transformer.start()
        with run.workload(rate=200, seed=12, min_ops=8_000) as workload:
            for i, at in enumerate([2_000, 6_000, 10_000]):
                run.wait_changes(at, workload)
                with run.fault(f"Connect SIGKILL {i + 1}", workload):
                    proc = stack.connect.proc.process()
                    assert proc is not None
                    # SIGKILL: Debezium's last offsets are not flushed; it re-sends after restart.
                    proc.kill()
                    proc.wait(30)
                    bring_back(stack, stack.connect)
                    run_cli("connectors", "apply", "--wait")
            workload.finish(tail_ops=1_000)
            _report(run, workload)
        run.assert_faults_inside(3, floor_each=500)
        run.assert_exact()
        assert run.transformer.stop() == 0


def test_kafka_broker_restart(shop: Settings, stack: LocalStack, tmp_path: Path) -> None:
    with FaultRun(shop, "broker", tmp_path) as run:
        run.transformer.start()
        with run.workload(rate=200, seed=13, min_ops=6_000) as workload:
            at = run.wait_changes(2_000, workload)
            with run.fault("broker down", workload):
                assert stack.kafka.stop()
                time.sleep(3)
                run.wait_changes(at + 1_000, workload)
                bring_back(stack, stack.kafka)
            workload.finish(tail_ops=1_000)
            _report(run, workload)
        run_cli("connectors", "apply", "--wait")
        run.assert_faults_inside(1, floor_each=1_000)
        run.assert_exact()
        assert run.transformer.stop() == 0


def test_registry_unavailable_for_30_seconds(
    shop: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    with FaultRun(shop, "registry", tmp_path) as run:
        run.transformer.start()
        with run.workload(rate=150, seed=14, min_ops=6_000) as workload:
            at = run.wait_changes(1_000, workload)
            with run.fault("registry down", workload):
                assert stack.registry.stop()
                # A fresh transformer has no schema ids cached: it must wait for the registry.
                run.transformer.kill()
                run.transformer.start()
                time.sleep(30)
                run.wait_changes(at + 2_000, workload)
                bring_back(stack, stack.registry)
            workload.finish(tail_ops=1_000)
            _report(run, workload)
        run.assert_faults_inside(1, floor_each=2_000)
        run.assert_exact()
        log = run.transformer.log.read_text()
        assert "schema registry unavailable" in log
        assert run.transformer.stop() == 0
