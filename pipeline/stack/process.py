"""Background processes of the local stack: start, find again by pid file, stop.

A pid file holds the pid and the process's start time; a process counts as
ours only when both match, so ``down`` never signals a process that merely
reuses an old pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

__all__ = ["ManagedProcess", "tail", "wait_until"]

Progress = Callable[[str], None]


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


class ManagedProcess:
    """One long-running process of the stack, tracked through a pid file."""

    def __init__(self, name: str, pid_file: Path, log_file: Path) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file

    def start(
        self,
        cmd: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(
                f"\n=== cdcflow: starting {self.name} at {time.ctime()}\n$ {' '.join(cmd)}\n".encode()
            )
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                start_new_session=True,  # a Ctrl-C in the shell does not kill the stack
            )
        self.record(proc.pid)
        return proc.pid

    def record(self, pid: int) -> None:
        created = psutil.Process(pid).create_time()
        self.pid_file.write_text(json.dumps({"pid": pid, "created": created}))

    def process(self) -> psutil.Process | None:
        """The running process this pid file names, or None."""
        try:
            data = json.loads(self.pid_file.read_text())
            proc = psutil.Process(int(data["pid"]))
            if abs(proc.create_time() - float(data["created"])) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (OSError, ValueError, KeyError, psutil.Error):
            return None

    @property
    def pid(self) -> int | None:
        proc = self.process()
        return proc.pid if proc else None

    def running(self) -> bool:
        return self.process() is not None

    def rss_bytes(self) -> int | None:
        proc = self.process()
        if proc is None:
            return None
        try:
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return int(total)
        except psutil.Error:
            return None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``. True when a process was stopped."""
        proc = self.process()
        if proc is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(10)
        self.pid_file.unlink(missing_ok=True)
        return True


def wait_until(
    check: Callable[[], str | None],
    *,
    what: str,
    timeout: float,
    progress: Progress,
    alive: Callable[[], bool] = lambda: True,
    every: float = 10.0,
) -> str | None:
    """Poll ``check`` until it returns None (ready) or the timeout passes.

    ``check`` returns None when ready, else a short reason. Reports progress
    every ``every`` seconds. Returns None when ready, else the last reason.
    """
    started = time.monotonic()
    last_report = started
    reason: str | None = "not checked yet"
    while True:
        reason = check()
        if reason is None:
            return None
        now = time.monotonic()
        if not alive():
            return f"the process exited ({reason})"
        if now - started > timeout:
            return f"not ready after {timeout:.0f}s ({reason})"
        if now - last_report >= every:
            progress(f"waiting for {what} ({now - started:.0f}s): {reason}")
            last_report = now
        time.sleep(0.5)
