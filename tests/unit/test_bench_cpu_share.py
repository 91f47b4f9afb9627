"""benchmarks.cpu_share: which part of the pipeline a process is, and CPU counted over a window."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.cpu_share import CpuShare, part_of


@pytest.mark.parametrize(
    ("cmdline", "part"),
    [
        (".venv/bin/python -m benchmarks.worker drain --mode transformer --group g", "transformer"),
        (".venv/bin/cdcflow run --processes 2", "transformer"),
        ("python -m benchmarks.worker workload --dsn postgresql://x@h/db --rate 250", "workload"),
        (
            "java -Xmx768m ... org.apache.kafka.connect.cli.ConnectDistributed w.properties",
            "kafka connect",
        ),
        ("java -Xmx768m ... kafka.Kafka server.properties", "kafka broker"),
        ("java -Dquarkus.http.port=8080 -jar quarkus-run.jar", "schema registry"),
        ("postgres: debezium shop 127.0.0.1(35938) idle", "postgresql"),
        ("/usr/bin/prometheus --config.file=p.yml", "prometheus"),
        ("bash -c sleep 1", "other"),
    ],
)
def test_a_process_is_counted_to_its_part_of_the_pipeline(cmdline: str, part: str) -> None:
    assert part_of(cmdline) == part


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc (Linux)")
def test_the_cpu_this_process_spends_in_the_window_is_counted() -> None:
    share = CpuShare()
    spent = time.process_time() + 0.3
    while time.process_time() < spent:  # 0.3 s of this process's CPU, however busy the machine
        pass
    used = share.stop()
    assert used is not None
    assert used["cores"] == os.cpu_count()
    assert 0 < used["machine_busy_pct"] <= 100
    # pytest is "other"; its 0.3 s are there (other processes may add to the part)
    assert used["cpu_seconds"]["other"] >= 0.25
