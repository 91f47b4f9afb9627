"""Machine-level helpers: installing Debian packages, finding JDKs, checking ports."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import StackError

__all__ = ["ensure_command", "find_java", "java_major", "port_in_use", "run_as"]

Progress = Callable[[str], None]
_apt_updated = False


def _apt_install(package: str, progress: Progress) -> None:
    global _apt_updated
    if os.geteuid() != 0:
        raise StackError(
            f"the Debian package {package!r} is needed and this user cannot install it",
            hint=f"run: sudo apt-get install -y {package}",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        progress("apt-get update ...")
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
        _apt_updated = True
    progress(f"apt-get install {package} ...")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(
            f"apt-get install {package} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}",
            hint=f"install {package} by hand and run 'cdcflow stack up' again",
        )


def ensure_command(command: str, package: str, progress: Progress, path: Path | None = None) -> str:
    """The path of ``command``; installs Debian ``package`` when it is missing.

    Raises:
        StackError: the command is missing and could not be installed.
    """
    found = str(path) if path and path.exists() else shutil.which(command)
    if found:
        return found
    _apt_install(package, progress)
    found = str(path) if path and path.exists() else shutil.which(command)
    if not found:
        raise StackError(f"{command} is still missing after installing {package}")
    return found


def java_major(java: Path) -> int:
    proc = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java(min_major: int, preferred: Path | None = None, newest: bool = False) -> Path:
    """A ``java`` binary of at least ``min_major``.

    Looks at ``preferred`` (a JDK home), then ``JAVA_HOME``, the ``java`` on
    PATH and every JDK under /usr/lib/jvm (newest first when ``newest``).

    Raises:
        StackError: no JDK of that version is installed.
    """
    candidates: list[Path] = []
    if preferred:
        candidates.append(Path(preferred) / "bin" / "java")
    jvm = sorted(Path("/usr/lib/jvm").glob("*/bin/java")) if Path("/usr/lib/jvm").is_dir() else []
    system = [Path(p) for p in [shutil.which("java")] if p]
    env_home = (
        [Path(os.environ["JAVA_HOME"]) / "bin" / "java"] if os.environ.get("JAVA_HOME") else []
    )
    rest = env_home + system + jvm
    seen: dict[Path, int] = {}
    for java in candidates + rest:
        if java.is_file() and java.resolve() not in seen:
            seen[java.resolve()] = java_major(java)
    if preferred:
        first = (Path(preferred) / "bin" / "java").resolve()
        if seen.get(first, 0) >= min_major:
            return first
    ok = [(major, java) for java, major in seen.items() if major >= min_major]
    if not ok:
        have = ", ".join(f"{j} ({m})" for j, m in seen.items()) or "none"
        raise StackError(
            f"no Java {min_major}+ runtime found (found: {have})",
            hint=f"install a JDK {min_major}+ and set CDCFLOW_STACK__REGISTRY_JAVA_HOME to it",
        )
    ok.sort(key=lambda mj: mj[0], reverse=newest)
    if not newest:
        # The system java when it is new enough, for Kafka and Connect.
        for _major, java in ok:
            if system and java == system[0].resolve():
                return java
    return ok[0][1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def run_as(user: str | None, cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as ``user`` (when root and a user is given), capturing text output."""
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]
