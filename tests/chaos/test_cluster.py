"""One of three brokers SIGKILLed mid-stream, then brought back: nothing lost, nothing twice.

The whole pipeline runs against the secured 3-node test cluster
(tests/chaos/cluster.py): Debezium in its own Connect worker writes the shop
database's changes into the cluster, one ``cdcflow run`` process turns them
into events. While a workload of shop operations runs, the node that
coordinates the transformer's consumer group (and leads a share of every
topic's partitions) is SIGKILLed: the group and transaction coordinators,
partition leaders and the KRaft quorum all fail over to the two others, which
keep accepting writes (3 replicas, 2 in sync). The node is then started
again and catches up. The same transformer process must carry on throughout,
and every change's events must be there exactly once, in order per aggregate,
checked against the database's history (tests/support/oracle.py).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.cluster import ClusterPipeline
from tests.chaos.harness import EVENT_TOPICS
from tests.chaos.support import assert_exact, start, start_group_at_end, transformers, wait_for_log

pytestmark = pytest.mark.chaos


def test_a_broker_sigkilled_mid_stream_and_brought_back(
    cluster: ClusterPipeline, tmp_path: Path
) -> None:
    group = f"chaos-broker-{uuid.uuid4().hex[:6]}"
    start_group_at_end(cluster.settings, group)
    run = cluster.fault_run("broker-kill", tmp_path)
    run.group = group
    env = run.transformer.env | {
        "CDCFLOW_TRANSFORMER__GROUP_ID": group,
        "CDCFLOW_TRANSFORMER__TRANSACTIONAL_ID": group,
    }
    with run, transformers() as started:
        transformer = start(started, env, tmp_path, "k", "k")
        wait_for_log(transformer, "assigned ")
        with run.workload(rate=300, seed=31, min_ops=8_000) as workload:
            at = run.wait_changes(2_000, workload)
            victim = cluster.coordinator(group)
            with run.fault(f"kafka-{victim} (the group's coordinator) down", workload):
                cluster.sigkill(victim)
                time.sleep(12)
                # The survivors took over: the event topics' partitions lost a replica
                # from their in-sync set, and are still written to.
                lagging = cluster.under_replicated(EVENT_TOPICS)
                run.wait_changes(at + 2_000, workload)
                cluster.restart(victim)
            print(
                f"[broker-kill] kafka-{victim} back; {lagging} event partitions were short "
                "of a replica",
                flush=True,
            )
            workload.finish(tail_ops=1_000)
            report = workload.join()
        print(
            f"[broker-kill] workload: {report.total} operations, {run.changes()} changes "
            f"in {report.seconds:.0f}s",
            flush=True,
        )
        assert lagging > 0
        run.assert_faults_inside(1, floor_each=2_000)
        assert_exact(run)
        assert transformer.alive() and transformer.starts == 1, "the transformer did not carry on"
        assert transformer.stop() == 0
