"""Replay throughput of the consumer library: runs ``benchmarks/replay_bench.py`` (issue 7).

The replay benchmark is its own script; this runs it as a child process,
passes its table through and keeps the JSON it prints last as
``benchmarks/results/replay.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks.common import REPO, say, write_result

SCRIPT = REPO / "benchmarks" / "replay_bench.py"


def main(events: int) -> dict[str, Any] | None:
    if not SCRIPT.exists():
        say(f"replay: {SCRIPT.name} is not there yet; skipped")
        return None
    say(f"replay: {SCRIPT.name} --events {events:,}")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--events", str(events)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    lines = out.rstrip().splitlines()
    try:
        figures: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        print(out)
        say("replay: no JSON summary in its output")
        return None
    print()
    print("Replay (benchmarks/replay_bench.py)")
    print("\n".join(lines[:-1]).strip())
    path = write_result("replay", figures)
    say(f"wrote {path}")
    return figures
