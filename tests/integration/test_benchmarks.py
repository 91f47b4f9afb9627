"""The throughput benchmark runs end to end on a small pre-load (no timing is asserted).

Benchmarks are run by hand (`make bench`); this keeps them from rotting: the
pre-load through the real connector, the three drains (transformer with and
without the overlapped commit, passthrough) and the removal of everything the
benchmark made. Only counts are checked, never speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient

from pipeline.settings import Settings
from pipeline.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]


def test_throughput_benchmark_drains_a_small_preload(
    stack: LocalStack, settings: Settings, tmp_path: Path
) -> None:
    result = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "throughput", "--records", "2000"],
        cwd=REPO,
        env=os.environ | {"CDCFLOW_BENCH_RESULTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert result.exists()
    figures = json.loads(result.read_text())
    captured = figures["debezium_capture"]["records"]
    assert captured >= 2000
    for mode in ("transformer", "overlapped"):
        assert figures[mode]["records"] >= captured, mode
        assert figures[mode]["events"] > 0, mode
    # Both transformers turn the same records into the same number of events.
    assert figures["transformer"]["events"] == figures["overlapped"]["events"]
    assert figures["passthrough"]["records"] >= captured
    assert "Throughput:" in proc.stdout and "vs passthrough" in proc.stdout
    # Nothing of the benchmark is left behind: no bench topics, no bench database.
    topics = AdminClient(settings.kafka.client_config()).list_topics(timeout=30).topics
    assert not [t for t in topics if t.startswith(("cdcbench.", "cdcbench-"))]
