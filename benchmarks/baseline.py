"""The hot path of an earlier revision, on the same records, in the same run (``hotpath --baseline REV``).

The revision is checked out into a temporary ``git worktree`` (removed
afterwards, whatever happens), the held records are written to a file next to
it, and :mod:`benchmarks.baseline_runner` runs them through that revision's
transformer in a child interpreter with the worktree first on ``sys.path``
(its working directory stays this checkout's: the local stack's state and
secrets are found where ``cdcflow stack up`` wrote them).
The ratio the hot path reports is the baseline's CPU per record over today's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, say
from benchmarks.held import Held, keep_held

RUNNER = Path(__file__).resolve().with_name("baseline_runner.py")


def _git(*args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _remove_worktree(tree: Path) -> None:
    """Remove the checkout and its record in the repository (never raises: the run's error wins)."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        say(f"baseline: 'git worktree remove' failed ({proc.stderr.strip()}); pruning instead")
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)


def measure_baseline(rev: str, records: list[Held], passes: int) -> dict[str, Any]:
    """CPU per record of revision ``rev``'s ``Transformer.process`` over ``records``, best of ``passes``.

    Raises:
        SystemExit: ``rev`` is not a commit, or its run failed (its output is above).
    """
    commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="cdcbench-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        held = Path(tmp) / "held.pkl"
        result = Path(tmp) / "baseline.json"
        keep_held(held, records)
        say(f"baseline: checking out {rev} ({commit[:12]}) in {tree}")
        _git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        try:
            command = [sys.executable, str(RUNNER), "--tree", str(tree), "--held", str(held)]
            command += ["--passes", str(passes), "--result", str(result)]
            say(f"baseline: {len(records):,} records through {rev}'s transformer")
            proc = subprocess.run(
                command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(tree)}, check=False
            )
            if proc.returncode != 0 or not result.exists():
                raise SystemExit(
                    f"the baseline run at {rev} failed (exit {proc.returncode}); its output is above"
                )
            figures: dict[str, Any] = json.loads(result.read_text())
        finally:
            _remove_worktree(tree)
    return {"rev": rev, "commit": commit[:12], **figures}
