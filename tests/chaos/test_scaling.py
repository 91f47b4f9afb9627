"""Horizontal scaling: several ``cdcflow run`` processes in one consumer group, under load.

While a workload of shop operations runs, the group changes three ways: a
process joins (the partitions are spread again), one is SIGKILLed (its
partitions wait for its session to expire, then move; its open transaction is
aborted by the coordinator when it times out), and a second process is
started with the SAME instance name as a running one. The newer process's ``init_transactions``
fences the older one's producer and its join fences the older static member:
the older process must stop with exit code 3, and whatever it had in flight
must never become visible. The processes run with ``transformer.overlap_commit``
on, so a batch processed but not committed is held across these rebalances.
Afterwards every change's events are checked
against the database's history (tests/support/oracle.py): no loss, no
duplicates, order per aggregate intact, nothing dead-lettered.

It runs on the secured 3-node test cluster (tests/chaos/cluster.py): Kafka of
its own, so no other transformer of the machine produces the same events
(their ids are deterministic, and a second producer would show as duplicates).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.cluster import ClusterPipeline
from tests.chaos.harness import FaultRun, TransformerProcess
from tests.chaos.support import (
    consumed,
    start,
    start_group_at_end,
    transformers,
    wait_exit,
    wait_for_log,
)

pytestmark = pytest.mark.chaos


def test_processes_join_die_and_are_fenced_under_load(
    cluster: ClusterPipeline, tmp_path: Path
) -> None:
    # A group and transactional ids of its own: nothing else's members or
    # transactions interfere, and the group starts at the CDC topics' ends.
    group = f"chaos-scale-{uuid.uuid4().hex[:6]}"
    partitions = start_group_at_end(cluster.settings, group)
    run = cluster.fault_run("scale", tmp_path)
    run.group = group
    env = run.transformer.env | {
        "CDCFLOW_TRANSFORMER__GROUP_ID": group,
        "CDCFLOW_TRANSFORMER__TRANSACTIONAL_ID": group,
        # The other fault tests run the default (each batch committed before the
        # next is processed); this one runs the overlapped commit, whose held
        # batches must survive joins, kills and fencing just the same.
        "CDCFLOW_TRANSFORMER__OVERLAP_COMMIT": "true",
    }

    with run, transformers() as started:

        def process(instance: str, log: str) -> TransformerProcess:
            return start(started, env, tmp_path, instance, log)

        _scale_kill_and_fence(run, process, partitions)


def _scale_kill_and_fence(
    run: FaultRun, process: Callable[[str, str], TransformerProcess], partitions: int
) -> None:
    a, b = process("a", "a"), process("b", "b")
    for proc in (a, b):
        wait_for_log(proc, "assigned ")
    with run.workload(rate=300, seed=21, min_ops=10_000) as workload:
        at = run.wait_changes(1_500, workload)
        with run.fault("c joins", workload):
            c = process("c", "c")  # scale out: the partitions are spread over three
            wait_for_log(c, "assigned ")

        at = run.wait_changes(at + 3_000, workload)
        with run.fault("b SIGKILLed", workload):
            # Mid-batch: its transaction stays open until it times out (60 s); its
            # partitions wait for its session to expire while the workload goes on.
            b.kill()
            run.wait_changes(at + 1_000, workload)

        at = run.wait_changes(at + 3_000, workload)
        with run.fault("a fenced by a second a", workload):
            a2 = process("a", "a-again")  # the same instance name as a running process
            assert wait_exit(a, 60) == 3, "the older 'a' was not fenced (exit 3 expected)"
            assert "was fenced" in a.log.read_text()
            wait_for_log(a2, "assigned ")
        workload.finish(tail_ops=1_500)
        report = workload.join()
    print(
        f"[scale] {partitions} CDC partitions; workload: {report.total} operations, "
        f"{run.changes()} changes in {report.seconds:.0f}s; "
        "a, b started; c added; b SIGKILLed; a fenced by a second 'a'",
        flush=True,
    )
    run.assert_faults_inside(3, floor_each=100)
    verdict = run.verify()
    if not verdict.exact:
        # Where the missing events' changes are, and what each member did (its
        # partitions, batches committed on revocation, aborts, fences, repeats
        # dropped), is what tells a loss's cause.
        print(run.whereabouts(verdict.missing_changes), flush=True)
        print(run.in_the_log(), flush=True)
        c.stop(), a2.stop()  # their totals (consumed, produced, skipped by reason) in the logs
        for proc in (a, b, c, a2):
            print(proc.story(), flush=True)
    assert verdict.expected > 0
    assert verdict.exact, verdict.report()
    assert run.dead_letters() == 0
    assert verdict.changes >= 10_000
    assert c.stop() == 0 and a2.stop() == 0
    per_process = {name: consumed(p.log) for name, p in {"a": a, "c": c, "a-again": a2}.items()}
    print(f"[scale] records consumed per process: {per_process} (b: SIGKILLed)", flush=True)
    # Every surviving member took part: the work was really shared.
    assert all(n > 0 for n in per_process.values()), per_process
