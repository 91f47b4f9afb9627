"""``cdcflow demo`` — the README's first command — end to end on the real stack.

The demo runs every step a user runs: stack, shop schema and seed, contracts,
connector, then the transformer and the projections under a workload, and
prints a summary whose balance (consumed = mapped + skipped + dead-lettered)
and read models are checked here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pipeline.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_every_step_and_balances(stack: LocalStack) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--rate", "20", "--duration", "6"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-4000:]}"
    steps = re.findall(r"^== (\d)/7 ", err, re.MULTILINE)
    assert steps == [str(n) for n in range(1, 8)], err[-4000:]

    # The workload ran and its operations became events, nothing dead-lettered.
    ops = re.search(r"^(\d+) operations in [\d.]+s", out, re.MULTILINE)
    assert ops is not None and int(ops.group(1)) > 0, out
    balance = re.search(
        r"CDC records consumed (\d+) = mapped (\d+) \+ skipped (\d+) \+ dead-lettered (\d+)(.*)$",
        out,
        re.MULTILINE,
    )
    assert balance is not None, out
    consumed, mapped, skipped, dead = (int(balance.group(i)) for i in range(1, 5))
    assert consumed == mapped + skipped + dead and "MISMATCH" not in balance.group(5)
    assert mapped > 0 and dead == 0
    produced = dict(re.findall(r"^\s*(Order\w+|Customer\w+|Product\w+)\s+(\d+)\s*$", out, re.M))
    assert int(produced.get("OrderPlaced", 0)) > 0, out

    # Sample events were printed as they arrived, and both read models answer.
    assert re.search(r"^\s+event\s+shop\.\w+\.events\[\d+\] key=\S+ \w+: \{", err, re.M), err[
        -3000:
    ]
    applied = re.findall(r"^projection (\S+): (\d+) events applied", out, re.MULTILINE)
    assert len(applied) == 2 and all(int(n) > 0 for _, n in applied), out
