"""Earlier versions of the contract files, from git.

``--against <ref>`` compares with the file as it is at ``<ref>`` (``git show``);
transitive levels compare with every version the file ever had in the history
of ``<ref>`` (``git log <ref> -- <file>``, then ``git show`` of each commit).
A shallow clone has only part of that history: the check then covers what is
there and says so (CI should fetch with ``fetch-depth: 0``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import SchemaContractError

__all__ = ["GitHistory", "HistoryUnavailable", "OldText"]


class HistoryUnavailable(SchemaContractError):
    """git is missing, this is not a repository, or the ref does not exist."""


@dataclass(frozen=True)
class OldText:
    """The text of a file at one point of the history, and how to name that point."""

    label: str
    commit: str
    text: str


class GitHistory:
    """Reads files at git refs. Paths are relative to the working directory."""

    def __init__(self, cwd: Path | None = None) -> None:
        """Find the repository ``cwd`` is in.

        Raises:
            HistoryUnavailable: git is not installed or ``cwd`` is not in a repository.
        """
        self.cwd = (cwd or Path.cwd()).resolve()
        self.top = Path(self._git("rev-parse", "--show-toplevel", cwd=self.cwd).strip())

    def _git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd or self.top,
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise HistoryUnavailable(f"cannot run git: {exc.strerror}") from exc
        if check and done.returncode != 0:
            raise HistoryUnavailable(
                f"git {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}"
            )
        return done.stdout if done.returncode == 0 else ""

    def resolve(self, ref: str) -> str:
        """The commit ``ref`` names.

        Raises:
            HistoryUnavailable: ``ref`` names no commit (the message says how to fetch it).
        """
        sha = self._git(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
        ).strip()
        if not sha:
            hint = "fetch it (in CI: actions/checkout with fetch-depth: 0)"
            if self.is_shallow():
                hint = "this is a shallow clone; " + hint
            raise HistoryUnavailable(f"git ref {ref!r} names no commit here", hint=hint)
        return sha

    def is_shallow(self) -> bool:
        return self._git("rev-parse", "--is-shallow-repository", check=False).strip() == "true"

    def relative(self, path: Path) -> str:
        """``path`` (relative to the working directory) as a repository path."""
        return (self.cwd / path).resolve().relative_to(self.top).as_posix()

    def show(self, commit: str, path: Path) -> str | None:
        """The file's text at ``commit``; None where it does not exist there."""
        done = subprocess.run(
            ["git", "show", f"{commit}:{self.relative(path)}"],
            cwd=self.top,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout if done.returncode == 0 else None

    def versions(self, ref: str, path: Path, *, every: bool) -> list[OldText]:
        """The file at ``ref`` or, with ``every``, each version in ``ref``'s history; oldest first.

        Consecutive identical versions are one version. A file absent at
        ``ref`` has no versions (a new contract).

        Raises:
            HistoryUnavailable: ``ref`` names no commit.
        """
        head = self.resolve(ref)
        current = self.show(head, path)
        if current is None:
            return []
        if not every:
            return [OldText(ref, head, current)]
        commits = self._git("log", "--format=%H", head, "--", self.relative(path)).split()
        out: list[OldText] = []
        for commit in reversed(commits):  # oldest first
            text = self.show(commit, path)
            if text is None or (out and out[-1].text == text):
                continue
            out.append(OldText(commit[:9], commit, text))
        if not out or out[-1].text != current:
            out.append(OldText(ref, head, current))
        else:
            out[-1] = OldText(ref, out[-1].commit, current)
        return out

    def files(self, ref: str, under: Path, suffix: str = ".avsc") -> list[Path]:
        """Files below ``under`` at ``ref``, as paths relative to the working directory.

        Raises:
            HistoryUnavailable: ``ref`` names no commit.
        """
        head = self.resolve(ref)
        listing = self._git("ls-tree", "-r", "--name-only", head, "--", self.relative(under))
        out = []
        for name in listing.splitlines():
            if name.endswith(suffix):
                absolute = self.top / name
                try:
                    out.append(absolute.relative_to(self.cwd))
                except ValueError:
                    out.append(absolute)
        return sorted(out)
