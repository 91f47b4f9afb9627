"""The benchmarks run end to end on a small pre-load (no timing is asserted).

Benchmarks are run by hand (`make bench`); this keeps them from rotting: the
pre-load through the real connector, the three drains (transformer with and
without the overlapped commit, passthrough), the hot path with its floor and
its baseline (the same records through the committed revision's transformer,
in a temporary git worktree), the record-format sizes, the scaling
configurations (1 and 2 processes of one group over the same records), and the removal of
everything the benchmarks made. Only counts and the presence of each figure
are checked, never speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.settings import Settings
from pipeline.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]


def _worktrees() -> list[str]:
    """The checkouts of the repository (their paths: HEADs move as commits are made)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line for line in listed if line.startswith("worktree ")]


@pytest.mark.timeout(2400)  # five benchmarks, one of them twice (the baseline), on a shared machine
def test_benchmarks_run_on_a_small_preload(
    stack: LocalStack, settings: Settings, tmp_path: Path
) -> None:
    result = tmp_path / "throughput.json"
    worktrees = _worktrees()
    command = [sys.executable, "-m", "benchmarks", "throughput", "hotpath", "record-format"]
    command += ["scaling", "--processes", "1,2"]
    command += ["--records", "2000", "--sample", "500", "--baseline", "HEAD"]
    command += ["--format-records", "400"]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=os.environ | {"CDCFLOW_BENCH_RESULTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=2200,
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

    # The hot path, measured on held records of the pre-load, and again at HEAD.
    hot = json.loads((tmp_path / "hotpath.json").read_text())
    assert 0 < hot["records"] <= 500
    assert hot["events"] > 0
    assert hot["us_per_record"] > 0
    baseline = hot["baseline"]
    assert baseline["rev"] == "HEAD" and len(baseline["commit"]) == 12
    # The same records through the committed code: the same events.
    assert baseline["records"] == hot["records"]
    assert baseline["events"] == hot["events"]
    assert hot["events_match_baseline"] is True
    assert baseline["us_per_record"] > 0
    # Both sides timed the same way: the least CPU of three passes.
    assert len(hot["cpu_seconds_passes"]) == len(baseline["cpu_seconds_passes"]) == 3
    assert abs(baseline["cpu_seconds"] - min(baseline["cpu_seconds_passes"])) <= 0.006
    assert hot["ratio_to_baseline"] == round(baseline["us_per_record"] / hot["us_per_record"], 2)
    assert "ratio_to_baseline" in proc.stdout
    # The floor: every library call timed on the events the rules made, and their sum.
    floor = hot["floor"]
    assert floor["records"] == hot["records"] and floor["events"] == hot["events"]
    steps = floor["us_per_record"]
    assert set(steps) == {
        "orjson_loads",
        "pydantic_model_validate",
        "fastavro_schemaless_writer",
        "uuid5",
    }
    assert all(us > 0 for us in steps.values()), steps
    assert floor["sum_us_per_record"] == round(sum(steps.values()), 1)
    assert "Floor:" in proc.stdout and "floor (the sum)" in proc.stdout
    # The temporary checkout of HEAD is gone.
    assert _worktrees() == worktrees

    # The record format: the shipped JSON with its schema against the payload alone.
    fmt = json.loads((tmp_path / "record-format.json").read_text())
    assert fmt["records"] == 400
    for form in ("schemas_enable_true", "schemas_enable_false"):
        assert set(fmt[form]) == {
            "value_bytes",
            "key_bytes",
            "value_bytes_compressed",
            "json_loads_us",
        }, form
        assert fmt[form]["value_bytes"] > 0 and fmt[form]["json_loads_us"] > 0, form
    assert fmt["schemas_enable_true"]["value_bytes"] > fmt["schemas_enable_false"]["value_bytes"]
    assert 0 < fmt["schema_share_of_value"] < 1
    assert "CDC record size" in proc.stdout

    # Scaling: each configuration drains the same records, up to the ends read before
    # the first (the connector's heartbeats written meanwhile are counted apart).
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    assert scaling["records"] >= captured
    runs = scaling["runs"]
    assert [r["processes"] for r in runs] == [1, 2]
    for run in runs:
        assert run["records"] == scaling["records"], run
        assert sum(run["per_process_records"]) == run["records"], run
        assert len(run["per_process_records"]) == len(run["timelines"]) == run["processes"]
        assert run["events"] > 0 and run["cpu_us_per_record"] > 0, run
        for process in run["timelines"]:
            # Every process ended by going idle, nothing keeping it from it.
            assert process["stop_reason"] == "idle", process
            assert process["started"] <= process["opened"] <= process["stopped"], process
        drained = [p for p in run["timelines"] if p["first"] is not None]
        # The clock: from the first record any process received to the last one committed.
        span = max(p["last"] for p in drained) - min(p["first"] for p in drained)
        assert abs(run["seconds"] - span) <= 0.02, run  # (the timelines are rounded to 0.01 s)
    # The same records make the same events, however many processes.
    assert runs[0]["events"] == runs[1]["events"]
    assert "Scaling:" in proc.stdout and "CPU us/record" in proc.stdout
    assert "from the first record any process received to the last one committed" in proc.stdout

    # Nothing of the benchmark is left behind: no bench topics, no bench database.
    topics = AdminClient(settings.kafka.client_config()).list_topics(timeout=30).topics
    assert not [t for t in topics if t.startswith(("cdcbench.", "cdcbench-"))]
