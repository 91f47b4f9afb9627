"""The shipped alert rules and dashboard, checked offline.

``promtool`` (Debian's ``prometheus`` package, installed on first use) checks
the rules and runs their unit tests, ``deploy/monitoring/alerts.test.yml``;
every metric a rule or a panel names must be one the transformer or
``cdcflow exporter`` really exposes, and every alert has its runbook.
The same queries asked of a real Prometheus: tests/integration/test_monitoring.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipeline.monitoring import StackCollector, alert_rules, dashboard_queries, with_for
from pipeline.monitoring.exporter import Slot
from pipeline.stack.prometheus import monitoring_dir, promtool
from pipeline.transformer.metrics import Metrics

MONITORING = monitoring_dir()
ALERTS = MONITORING / "alerts.yml"
OPERATIONS = MONITORING.parent.parent / "docs" / "operations.md"
METRIC = re.compile(r"\b(cdcflow_[a-z_]+)")


def exposed_names() -> set[str]:
    """Every sample name the transformer's and the exporter's registries can give."""
    metrics = Metrics()
    # Labelled counters and gauges show samples only once a label value is used.
    metrics.consumed.labels("t").inc()
    metrics.mapped.labels("t").inc()
    metrics.produced.labels("E").inc()
    metrics.skipped.labels("tombstone").inc()
    metrics.dead_lettered.labels("decode").inc()
    metrics.transactions.labels("committed").inc()
    metrics.consumer_lag.labels("t", "0").set(1)
    names = {s.name for m in metrics.registry.collect() for s in m.samples}
    status = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}
    exporter = CollectorRegistry()
    exporter.register(
        StackCollector(lambda: [Slot("s", "d", "pgoutput", True, 1, 1)], lambda: {"c": status})
    )
    names |= {s.name for m in exporter.collect() for s in m.samples}
    return names


def test_promtool_checks_the_shipped_rules() -> None:
    proc = promtool("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules(ALERTS))} rules found" in proc.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERTS.read_text().replace("> 10000", "> > 10000", 1))
    proc = promtool("check", "rules", str(broken))
    assert proc.returncode != 0
    assert "CdcflowConsumerLag" in proc.stdout + proc.stderr or "parse error" in proc.stderr


def test_promtool_checks_the_shipped_configuration() -> None:
    proc = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules(ALERTS))} rules found" in proc.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    proc = promtool("test", "rules", str(MONITORING / "alerts.test.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_a_rule_unit_test_can_fail(tmp_path: Path) -> None:
    """The same tests against rules whose lag threshold moved: promtool reports it."""
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text().replace("> 10000", "> 20000", 1))
    (tmp_path / "alerts.test.yml").write_text((MONITORING / "alerts.test.yml").read_text())
    proc = promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert proc.returncode != 0
    assert "alertname: CdcflowConsumerLag" in proc.stdout + proc.stderr


def test_the_alerts_cover_the_pipeline() -> None:
    names = {rule["alert"] for rule in alert_rules(ALERTS)}
    assert names == {
        "CdcflowDeadLetters",
        "CdcflowConsumerLag",
        "CdcflowNoCommit",
        "CdcflowFenced",
        "CdcflowTransformerDown",
        "CdcflowSlotWalRetained",
        "CdcflowConnectorTaskFailed",
        "CdcflowExporterDown",
    }


def test_every_alert_fires_in_its_unit_tests() -> None:
    import yaml

    tests = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules(ALERTS)}
    assert fired == names
    assert names - {"CdcflowExporterDown"} <= quiet


def test_every_alert_has_a_runbook() -> None:
    text = OPERATIONS.read_text()
    for rule in alert_rules(ALERTS):
        name = rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert f"\n### {name}\n" in text, f"no runbook heading for {name} in {OPERATIONS}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


@pytest.mark.parametrize("rule", alert_rules(ALERTS), ids=lambda r: r["alert"])
def test_each_rule_names_only_exposed_metrics(rule: dict[str, str]) -> None:
    used = set(METRIC.findall(rule["expr"]))
    assert used or rule["expr"].startswith("up{job="), rule["expr"]
    assert used <= exposed_names(), used - exposed_names()


def test_the_dashboard_names_only_exposed_metrics() -> None:
    queries = dashboard_queries(MONITORING / "dashboard.json")
    titles = " ".join(q.panel.lower() for q in queries)
    for topic in ("throughput", "lag", "latency histogram", "dead letters", "transactions", "wal"):
        assert topic in titles, topic
    exposed = exposed_names()
    for query in queries:
        used = set(METRIC.findall(query.expr))
        assert used and used <= exposed, (query.panel, used - exposed)


def test_with_for_shortens_every_wait_and_keeps_the_expressions(tmp_path: Path) -> None:
    short = tmp_path / "alerts.yml"
    short.write_text(with_for(ALERTS, "2s"))
    shipped, derived = alert_rules(ALERTS), alert_rules(short)
    assert [r["expr"] for r in derived] == [r["expr"] for r in shipped]
    assert {r["for"] for r in derived} == {"2s"}
    assert any(r.get("for", "0s") != "2s" for r in shipped)
    proc = promtool("check", "rules", str(short))
    assert proc.returncode == 0, proc.stdout + proc.stderr
