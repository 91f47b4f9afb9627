"""``cdcflow run --processes N``: the supervisor's names, exit code and signal forwarding.

The children run a stand-in for the transformer (``run_one`` patched before the
fork): no services. The real transformers sharing a group are tested in
tests/integration/test_processes.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import run as run_cli
from pipeline.errors import TransformerFenced
from pipeline.settings import load_settings


def test_children_are_named_after_the_instance() -> None:
    assert [run_cli.child_instance("a", i) for i in range(3)] == ["a-0", "a-1", "a-2"]


def test_the_worst_exit_code_wins() -> None:
    assert run_cli.worst_exit_code([0, 0]) == 0
    assert run_cli.worst_exit_code([0, 3, 1]) == 3
    assert run_cli.worst_exit_code([78, 3]) == 78
    assert run_cli.worst_exit_code([0, -signal.SIGKILL]) == 128 + signal.SIGKILL
    assert run_cli.worst_exit_code([]) == 0


def _wait_for_sigterm(marks: Path, instance: str, port: Any = None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    (marks / f"{instance}.started").write_text(f"{os.getpid()} {port}")
    stop.wait(30)
    (marks / f"{instance}.stopped").write_text("signal" if stop.is_set() else "timeout")


def test_sigterm_reaches_every_child_and_all_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def child(_settings: Any, _domain: Any, instance: str, port: Any, _idle: Any) -> None:
        _wait_for_sigterm(tmp_path, instance, port)

    monkeypatch.setattr(run_cli, "run_one", child)

    def terminate_when_started() -> None:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("*.started"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_started, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    settings = load_settings(transformer={"metrics_port": 9500})
    code = run_cli.run_processes(settings, 3, instance="t")
    assert code == 0
    stopped = {p.name: p.read_text() for p in tmp_path.glob("*.stopped")}
    assert stopped == {f"t-{i}.stopped": "signal" for i in range(3)}
    ports = {p.name: p.read_text().split()[1] for p in tmp_path.glob("*.started")}
    assert ports == {f"t-{i}.started": str(9500 + i) for i in range(3)}
    # The supervisor's own handlers are put back.
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_failing_child_stops_the_others_and_its_code_is_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def child(_settings: Any, _domain: Any, instance: str, _port: Any, _idle: Any) -> None:
        if instance == "t-0":
            while not (tmp_path / "t-1.started").exists():
                time.sleep(0.05)
            raise TransformerFenced("fenced by a newer instance")
        _wait_for_sigterm(tmp_path, instance)

    monkeypatch.setattr(run_cli, "run_one", child)
    code = run_cli.run_processes(load_settings(), 2, instance="t")
    assert code == TransformerFenced.exit_code == 3
    assert (tmp_path / "t-1.stopped").read_text() == "signal"


def test_processes_must_be_at_least_one() -> None:
    result = CliRunner().invoke(run_cli.command, ["--processes", "0"], obj=None)
    assert result.exit_code == 2
    assert "--processes" in result.output
