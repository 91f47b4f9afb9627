"""The shipped monitoring files and a small client of Prometheus's HTTP API.

``deploy/monitoring/alerts.yml`` (alert rules), ``alerts.test.yml`` (their
``promtool test rules`` tests) and ``dashboard.json`` (Grafana) are read here:
:func:`alert_rules` lists the alerts, :func:`with_for` gives the same rules with
every ``for:`` replaced (a test waits seconds, not minutes, the expressions
unchanged), :func:`dashboard_queries` lists every panel's query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from pipeline.errors import CdcflowError

__all__ = [
    "DashboardQuery",
    "PrometheusApi",
    "PrometheusError",
    "alert_rules",
    "dashboard_queries",
    "with_for",
]


class PrometheusError(CdcflowError):
    """Prometheus did not answer, or answered a query with an error (its message kept)."""


def alert_rules(path: Path) -> list[dict[str, Any]]:
    """The alerting rules of a rules file, in file order (recording rules left out).

    Raises:
        CdcflowError: the file cannot be read or is not a rules file.
    """
    try:
        doc = yaml.safe_load(path.read_text())
        return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise CdcflowError(f"cannot read the alert rules in {path}: {exc}") from exc


def with_for(path: Path, duration: str) -> str:
    """The rules file at ``path`` with every alert's ``for:`` set to ``duration``."""
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = duration
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class DashboardQuery:
    panel: str
    ref: str
    expr: str


def dashboard_queries(path: Path) -> list[DashboardQuery]:
    """Every Prometheus query of a Grafana dashboard's panels (rows' nested panels too).

    Raises:
        CdcflowError: the file cannot be read or is not JSON.
    """
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CdcflowError(f"cannot read the dashboard {path}: {exc}") from exc
    found: list[DashboardQuery] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append(
                        DashboardQuery(
                            panel.get("title", ""), target.get("refId", ""), target["expr"]
                        )
                    )
            walk(panel.get("panels", []))

    walk(doc.get("panels", []))
    return found


class PrometheusApi:
    """``/api/v1`` of one Prometheus server: instant queries, alerts, targets."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, **params: str) -> Any:
        try:
            resp = requests.get(self.url + path, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} does not answer: {exc}",
                hint="is it running? ('cdcflow stack status')",
            ) from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise PrometheusError(
                f"GET {path} answered {resp.status_code}, not JSON: {resp.text[:500]}"
            ) from exc
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET {path} {params} answered {resp.status_code}: "
                f"{body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (``[{"metric": {...}, "value": [t, "v"]}]``).

        Raises:
            PrometheusError: unreachable, or the query is invalid (Prometheus's message).
        """
        data = self._get("/api/v1/query", query=expr)
        if data.get("resultType") != "vector":
            raise PrometheusError(f"{expr!r} gives a {data.get('resultType')}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing now, each with ``labels``, ``state`` and ``activeAt``."""
        result: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their ``health`` and ``lastError``."""
        result: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return result
