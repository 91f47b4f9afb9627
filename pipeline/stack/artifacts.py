"""Fetch the pinned stack artifacts from Maven Central, once per machine.

Each artifact set is fetched into ``<cache>/<name>-<version>.tmp`` and renamed
to its final directory only when complete, so an interrupted fetch is retried
from scratch and a present directory is always whole. A second ``stack up``
finds every directory in place and runs no Maven at all.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ArtifactError
from pipeline.stack.system import ensure_command
from pipeline.stack.versions import Versions

__all__ = ["Artifacts", "ensure_artifacts", "ensure_rest_auth"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Artifacts:
    kafka_libs: Path
    plugin_path: Path
    registry_home: Path
    fetched: tuple[str, ...]

    @property
    def debezium_plugin(self) -> Path:
        return self.plugin_path / "debezium-connector-postgres"


def _mvn(pom: Path, goal: str, out: Path, what: str) -> None:
    cmd = [
        "mvn",
        "--batch-mode",
        "--no-transfer-progress",
        "-q",
        "-f",
        str(pom),
        goal,
        f"-Dcdcflow.out={out}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ArtifactError(
            f"fetching {what} from Maven Central failed (exit {proc.returncode}):\n"
            f"$ {' '.join(cmd)}\n{tail}",
            hint="check the network to Maven Central and the versions in deploy/local/pom.xml",
        )


def _fetch(final: Path, pom: Path, goal: str, what: str, progress: Progress) -> bool:
    if final.is_dir():
        return False
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"fetching {what} from Maven Central ...")
    started = time.monotonic()
    _mvn(pom, goal, tmp, what)
    tmp.rename(final)
    progress(f"fetched {what} in {time.monotonic() - started:.1f}s")
    return True


def ensure_artifacts(cache: Path, versions: Versions, progress: Progress) -> Artifacts:
    """Make sure Kafka, Debezium and the registry are in the cache; fetch what is missing.

    Raises:
        ArtifactError: Maven is missing and cannot be installed, or a fetch failed.
    """
    cache = cache.expanduser().resolve()
    kafka = cache / f"kafka-{versions.kafka}-log4j-{versions.log4j}-slf4j-{versions.slf4j}"
    debezium = cache / f"debezium-{versions.debezium}"
    registry = cache / f"registry-{versions.registry}"
    wanted = [
        (kafka, "dependency:copy-dependencies", f"Kafka {versions.kafka} (broker + Connect)"),
        (
            debezium,
            "dependency:unpack@debezium",
            f"Debezium Postgres connector {versions.debezium}",
        ),
        (registry, "dependency:unpack@registry", f"Apicurio Registry {versions.registry}"),
    ]
    fetched = []
    if any(not path.is_dir() for path, _, _ in wanted):
        ensure_command("mvn", "maven", progress)
    for path, goal, what in wanted:
        if _fetch(path, versions.pom, goal, what, progress):
            fetched.append(what)
    if not (registry / "quarkus-run.jar").is_file():
        raise ArtifactError(
            f"{registry} holds no quarkus-run.jar",
            hint=f"remove {registry} and run 'cdcflow stack up' again",
        )
    return Artifacts(
        kafka_libs=kafka, plugin_path=debezium, registry_home=registry, fetched=tuple(fetched)
    )


def ensure_rest_auth(cache: Path, versions: Versions, progress: Progress) -> Path:
    """The directory holding Connect's REST basic-auth extension, fetched on first use.

    Only a secured stack needs it, so ``ensure_artifacts`` leaves it out and a
    plain stack never fetches it. The directory goes on Connect's ``plugin.path``.

    Raises:
        ArtifactError: Maven is missing and cannot be installed, or the fetch failed.
    """
    final = cache.expanduser().resolve() / f"connect-rest-auth-{versions.kafka}"
    if not final.is_dir():
        ensure_command("mvn", "maven", progress)
        _fetch(
            final,
            versions.pom,
            "dependency:copy@rest-auth",
            "Connect's REST basic-auth extension",
            progress,
        )
    return final
