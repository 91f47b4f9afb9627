"""Prometheus of the local stack, from Debian's package, evaluating ``deploy/monitoring``.

The stack's Prometheus (port ``stack.prometheus_port``, state under
``<home>/prometheus``) scrapes two jobs: ``cdcflow-transformer`` (a transformer's
``/metrics`` on ``transformer.metrics_port``) and ``cdcflow-exporter`` (the
replication slots and Connect states of ``cdcflow exporter``), at their default
local ports and at any address written into ``<root>/targets/<job>/*.json``
(Prometheus's file discovery, re-read within seconds). It loads the shipped
alert rules, ``deploy/monitoring/alerts.yml``, as they are.

A second instance (another ``name``, port and rule files, shorter intervals) is
what the tests start to watch an alert fire without waiting minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests
import yaml

from pipeline.settings import Settings
from pipeline.stack.artifacts import Artifacts
from pipeline.stack.components import Component, Progress, StackPaths
from pipeline.stack.system import ensure_command
from pipeline.stack.versions import Versions, deploy_dir

__all__ = [
    "EXPORTER_JOB",
    "EXPORTER_PORT",
    "TRANSFORMER_JOB",
    "Prometheus",
    "monitoring_dir",
    "promtool",
]

TRANSFORMER_JOB = "cdcflow-transformer"
EXPORTER_JOB = "cdcflow-exporter"
EXPORTER_PORT = 9188  # ``cdcflow exporter``'s default


def monitoring_dir() -> Path:
    """``deploy/monitoring`` of this checkout: alert rules, their tests, the dashboard."""
    return deploy_dir().parent / "monitoring"


class Prometheus(Component):
    """A Prometheus server as a plain process of the stack."""

    name = "prometheus"

    def __init__(
        self,
        settings: Settings,
        paths: StackPaths,
        versions: Versions,
        *,
        name: str | None = None,
        port: int | None = None,
        interval: str = "15s",
        rule_files: list[Path] | None = None,
        default_targets: bool = True,
    ) -> None:
        """``name``, ``port``, ``interval`` (scrape and evaluation), ``rule_files`` and
        ``default_targets`` (scrape the default local ports) make another instance."""
        if name is not None:
            self.name = name
        self._port = port
        self.interval = interval
        self.rule_files = (
            rule_files if rule_files is not None else [monitoring_dir() / "alerts.yml"]
        )
        self.default_targets = default_targets
        super().__init__(settings, paths, versions)

    @property
    def port(self) -> int:
        return self._port if self._port is not None else self.stack.prometheus_port

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def root(self) -> Path:
        return self.paths.home / self.name

    @property
    def config_file(self) -> Path:
        return self.root / "prometheus.yml"

    def targets_dir(self, job: str) -> Path:
        return self.root / "targets" / job

    @property
    def version(self) -> str:
        try:
            info = requests.get(self.url + "/api/v1/status/buildinfo", timeout=2).json()
            return str(info["data"]["version"])
        except (requests.RequestException, ValueError, KeyError):
            return "?"

    def config(self) -> dict[str, Any]:
        """The server's configuration: both jobs, file discovery, the rule files."""
        defaults = {
            TRANSFORMER_JOB: f"localhost:{self.settings.transformer.metrics_port}",
            EXPORTER_JOB: f"localhost:{EXPORTER_PORT}",
        }
        jobs = []
        for job, address in defaults.items():
            scrape: dict[str, Any] = {
                "job_name": job,
                "file_sd_configs": [
                    {"files": [str(self.targets_dir(job) / "*.json")], "refresh_interval": "5s"}
                ],
            }
            if self.default_targets:
                scrape["static_configs"] = [{"targets": [address]}]
            jobs.append(scrape)
        return {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": jobs,
        }

    def add_target(self, job: str, name: str, address: str, **labels: str) -> Path:
        """Scrape ``address`` (host:port) in ``job`` from now on; returns the target file."""
        directory = self.targets_dir(job)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [address], "labels": labels}]))
        tmp.replace(path)  # discovery never reads half a file
        return path

    def prepare(self, artifacts: Artifacts, progress: Progress) -> None:
        ensure_command("prometheus", "prometheus", progress)
        for job in (TRANSFORMER_JOB, EXPORTER_JOB):
            self.targets_dir(job).mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _launch(self, artifacts: Artifacts, progress: Progress) -> None:
        binary = ensure_command("prometheus", "prometheus", progress)
        cmd = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.root / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=localhost:{self.port}",
            "--web.enable-lifecycle",
        ]
        self.proc.start(cmd, cwd=self.root)

    def check(self) -> str | None:
        try:
            resp = requests.get(self.url + "/-/ready", timeout=3)
        except requests.RequestException:
            return f"HTTP on port {self.port} not answering yet"
        return None if resp.status_code == 200 else f"GET /-/ready answered {resp.status_code}"

    def remove(self) -> None:
        """Stop the server and delete its state and log (an instance a test started)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.proc.log_file.unlink(missing_ok=True)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's ``promtool`` (installed with the ``prometheus`` package)."""
    binary = ensure_command("promtool", "prometheus", lambda _msg: None)
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)
