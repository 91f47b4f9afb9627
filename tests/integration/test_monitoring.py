"""A real Prometheus evaluates the shipped alert rules and answers the dashboard's queries.

The real chain runs (PostgreSQL -> Debezium -> a CDC topic -> the transformer in
a thread, its ``/metrics`` served) with the ``tests.domains.fidelity`` rules,
beside ``cdcflow exporter``'s collector reading the stack's PostgreSQL and
Connect. A Prometheus of the test's own (Debian's package, started like the
stack's parts, on a free port, state under the stack's directory) scrapes both
every second and loads ``deploy/monitoring/alerts.yml`` with every ``for:``
cut to 5 s — the expressions as shipped.

A record that is not JSON, produced into the CDC topic, is dead-lettered; the
``CdcflowDeadLetters`` alert must go pending and then firing in
``/api/v1/alerts`` for that transformer and stage ``decode``. Every panel query
of ``deploy/monitoring/dashboard.json`` must be valid and return series.
``cdcflow exporter --once -o json`` must report the run's slot and connector.

A second transformer started with the first one's transactional id fences it;
``CdcflowFenced`` must fire for the first one's instance. A second connector on
the run's slot fails; ``CdcflowConnectorTaskFailed`` must fire for it, from the
exporter's reading of Connect.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConnectError
from pipeline.monitoring import PrometheusApi, dashboard_queries, exporter_registry, serve, with_for
from pipeline.settings import Settings
from pipeline.stack import LocalStack
from pipeline.stack.prometheus import EXPORTER_JOB, TRANSFORMER_JOB, Prometheus, monitoring_dir
from pipeline.transformer import Metrics, build_transformer
from tests.integration.harness import PipelineRun, connector_config, fidelity_run

PROBES = "fidelity.probes"
NOT_JSON = b'{"payload": {"op": "c", '
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(stack: LocalStack, tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus of this test's own: 1 s intervals, the shipped rules with ``for: 5s``."""
    rules = tmp_path / "alerts.yml"
    rules.write_text(with_for(monitoring_dir() / "alerts.yml", "5s"))
    server = Prometheus(
        stack.settings,
        stack.paths,
        stack.versions,
        name=f"prometheus-it-{os.getpid()}-{free_port()}",
        port=free_port(),
        interval="1s",
        rule_files=[rules],
        default_targets=False,
    )
    try:
        server.start(stack.artifacts(), progress=lambda msg: print(f"[prometheus] {msg}"))
        yield server
    finally:
        server.remove()


def wait(
    what: str, run: PipelineRun | None, check: Any, timeout_s: float = 180, seen: Any = None
) -> Any:
    """Poll ``check`` until it returns something truthy; returns it.

    The failure of ``run``'s transformer ends the wait. On timeout the message
    holds what ``seen()`` returns (the alerts, a status).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if run is not None:
            run.check_transformer()
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            state = f"; seen: {seen()}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{state}")
        time.sleep(0.5)


def firing(api: PrometheusApi, name: str, **labels: str) -> Any:
    """A check for :func:`wait`: the alert ``name`` firing with ``labels``, else None."""

    def check() -> dict[str, Any] | None:
        for alert in api.alerts():
            have = alert["labels"]
            wanted = all(have.get(k) == v for k, v in labels.items())
            if alert["state"] == "firing" and have["alertname"] == name and wanted:
                return dict(alert)
        return None

    return check


@contextlib.contextmanager
def scraped(run: PipelineRun, prometheus: Prometheus, *, exporter: bool) -> Iterator[str]:
    """Serve the run's transformer metrics (and an exporter) and have ``prometheus`` scrape
    them; yields the transformer's address, its ``instance`` label."""
    api = PrometheusApi(prometheus.url)
    transformer = f"127.0.0.1:{run.metrics.serve(0, host='127.0.0.1')}"
    prometheus.add_target(TRANSFORMER_JOB, run.token, transformer)
    jobs = {TRANSFORMER_JOB}
    server = serve(exporter_registry(run.settings), 0) if exporter else None
    try:
        if server is not None:
            prometheus.add_target(EXPORTER_JOB, run.token, f"127.0.0.1:{server.server_port}")
            jobs.add(EXPORTER_JOB)
        wait(
            "the targets scraped and up",
            run,
            lambda: {t["labels"]["job"] for t in api.targets() if t["health"] == "up"} == jobs,
        )
        yield transformer
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        run.metrics.close()


def test_a_poison_record_fires_the_dead_letter_alert_and_the_dashboard_answers(
    stack: LocalStack,
    settings: Settings,
    prometheus: Prometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = PrometheusApi(prometheus.url)
    with fidelity_run(stack, settings, tmp_path, monkeypatch, "mon") as run:
        run.register_contracts()
        run.start_connector([PROBES])
        run.start_transformer()
        with scraped(run, prometheus, exporter=True) as transformer:
            cdc = run.cdc_topic(PROBES)
            with run.db() as conn:
                for probe_id in (1, 2, 3):  # one transaction each
                    conn.execute(
                        "INSERT INTO fidelity.probes VALUES (%s, 'good', %s, 1.00)",
                        (probe_id, probe_id),
                    )
                conn.execute("UPDATE fidelity.probes SET label = 'renamed' WHERE id = 1")
            run.wait_for("the four CDC records", lambda: run.end_offsets(cdc) >= 4)
            run.wait_for(
                "the good records committed",
                lambda: sum(run.totals()["consumed"].values()) >= 4,
            )
            # No dead letter yet: the alert is quiet while the good records flow.
            assert not [a for a in api.alerts() if a["labels"]["alertname"] == "CdcflowDeadLetters"]

            run.produce_raw(cdc, NOT_JSON)
            states: list[str] = []

            def dead_letter_alert() -> dict[str, Any] | None:
                for alert in api.alerts():
                    labels = alert["labels"]
                    if labels["alertname"] == "CdcflowDeadLetters":
                        assert (labels["instance"], labels["stage"]) == (transformer, "decode")
                        if not states or states[-1] != alert["state"]:
                            states.append(alert["state"])
                        if alert["state"] == "firing":
                            return dict(alert)
                return None

            alert = wait(
                "CdcflowDeadLetters firing", run, dead_letter_alert, timeout_s=120, seen=api.alerts
            )
            assert run.totals()["dead_lettered"] == {"decode": 1}
            assert alert["labels"]["severity"] == "warning"
            assert alert["annotations"]["runbook"] == "docs/operations.md#cdcflowdeadletters"
            assert "(stage decode)" in alert["annotations"]["summary"]
            # Polled twice a second against a 5 s `for:`, the pending state is seen first.
            assert states[0] == "pending" and states[-1] == "firing", states
            # The transformer raises no other alert (the exporter reports every slot of
            # the shared server, so slot alerts are not this test's to judge).
            others = {
                a["labels"]["alertname"]
                for a in api.alerts()
                if a["labels"].get("instance") == transformer
            }
            assert others == {"CdcflowDeadLetters"}, others

            # -- every panel of the dashboard: a valid query with series
            queries = dashboard_queries(monitoring_dir() / "dashboard.json")

            def empty() -> list[str]:
                return [f"{q.panel} [{q.ref}]: {q.expr}" for q in queries if not api.query(q.expr)]

            missing = empty()
            deadline = time.monotonic() + 60
            while missing and time.monotonic() < deadline:  # rates need two samples
                time.sleep(1)
                missing = empty()
            assert not missing, missing
            answered = {q.expr: api.query(q.expr) for q in queries}
            produced = answered["sum by (event_type) (rate(cdcflow_events_produced_total[5m]))"]
            assert {s["metric"]["event_type"] for s in produced} == {"ProbeRecorded"}
            stages = answered["sum by (stage) (increase(cdcflow_records_dead_lettered_total[5m]))"]
            assert {s["metric"]["stage"] for s in stages} == {"decode"}
            observed = api.query("sum(cdcflow_end_to_end_lag_seconds_count)")
            assert float(observed[0]["value"][1]) >= 3  # the three inserts' events

            # -- the exporter's series: the run's slot and connector
            slot = api.query(f'cdcflow_replication_slot_wal_retained_bytes{{slot="{run.slot}"}}')
            assert len(slot) == 1 and float(slot[0]["value"][1]) >= 0
            task = api.query(
                f'cdcflow_connect_task_state{{connector="{run.connector}",state="RUNNING"}}'
            )
            assert [(s["metric"]["task"], s["value"][1]) for s in task] == [("0", "1")]
        run.stop_transformer()

        # -- the command: one reading, as JSON
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "-o", "json", "exporter", "--once"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        samples = json.loads(proc.stdout)
        up = {s["labels"]["source"]: s["value"] for s in samples if s["metric"].endswith("up")}
        assert up == {"postgres": 1.0, "connect": 1.0}
        assert any(
            s["metric"] == "cdcflow_replication_slot_active" and s["labels"]["slot"] == run.slot
            for s in samples
        )
        assert any(
            s["metric"] == "cdcflow_connect_connector_state"
            and s["labels"]
            == {"connector": run.connector, "state": "RUNNING", "worker": s["labels"]["worker"]}
            for s in samples
        )


def test_a_second_transformer_of_the_same_id_fires_the_fenced_alert(
    stack: LocalStack,
    settings: Settings,
    prometheus: Prometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A copy started with the same transactional id fences the first: CdcflowFenced fires.

    The first transformer's metrics stay served after it stopped (they belong to
    the test), so the fence counter is scraped as it would be from a process
    that lived a scrape longer.
    """
    api = PrometheusApi(prometheus.url)
    with fidelity_run(stack, settings, tmp_path, monkeypatch, "fence") as run:
        run.register_contracts()
        run.start_connector([PROBES])
        run.start_transformer()
        with scraped(run, prometheus, exporter=False) as first:
            cdc = run.cdc_topic(PROBES)
            with run.db() as conn:
                conn.execute("INSERT INTO fidelity.probes VALUES (1, 'good', 1, 1.00)")
            run.wait_for("the first record", lambda: run.end_offsets(cdc) >= 1)
            run.wait_for("the first batch", lambda: sum(run.totals()["consumed"].values()) >= 1)

            source = run.settings.source.model_copy(update={"database": run.database})
            copy = build_transformer(
                run.settings.model_copy(update={"source": source}),
                domain=run.domain,
                metrics=Metrics(),
            )
            stop = threading.Event()
            thread = threading.Thread(target=copy.run, args=(stop,), daemon=True)
            thread.start()
            try:
                with run.db() as conn:  # records for whichever instance holds the partition
                    conn.execute("INSERT INTO fidelity.probes VALUES (2, 'good', 2, 2.00)")

                def fenced() -> bool:
                    try:
                        run.check_transformer()
                    except AssertionError as exc:
                        # cdcflow's TransformerFenced, by name: wherever the error tree keeps it.
                        assert type(exc.__cause__).__name__ == "TransformerFenced", exc
                        assert "fenced" in str(exc.__cause__)
                        return True
                    return False

                wait("the first transformer fenced", None, fenced, timeout_s=120)
                assert run.totals()["transactions"].get("fenced") == 1

                alert = wait(
                    "CdcflowFenced firing",
                    None,
                    firing(api, "CdcflowFenced", instance=first),
                    timeout_s=120,
                    seen=api.alerts,
                )
                assert alert["labels"]["instance"] == first
                assert alert["labels"]["severity"] == "critical"
                assert alert["annotations"]["runbook"] == "docs/operations.md#cdcflowfenced"
            finally:
                stop.set()
                thread.join(60)
                copy.close()
        with pytest.raises(AssertionError, match="fenced"):
            run.stop_transformer()


def test_a_failed_connector_task_fires_its_alert_through_the_exporter(
    stack: LocalStack,
    settings: Settings,
    prometheus: Prometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second connector on the run's slot, which the first one streams from, fails.

    Debezium gives up on a slot another client holds (``slot.max.retries``,
    ``errors.max.retries``);
    Connect marks the task FAILED, the exporter reports it, and
    ``CdcflowConnectorTaskFailed`` fires for that connector and task.
    """
    api = PrometheusApi(prometheus.url)
    with fidelity_run(stack, settings, tmp_path, monkeypatch, "taskfail") as run:
        run.start_connector([PROBES])
        clash = f"{run.connector}-clash"
        config = connector_config(run.database, f"{run.prefix}x", run.slot, [PROBES])
        # Debezium retries a retriable error without end unless errors.max.retries says.
        config |= {"slot.max.retries": "1", "slot.retry.delay.ms": "200", "errors.max.retries": "0"}
        server = serve(exporter_registry(run.settings), 0)
        try:
            prometheus.add_target(EXPORTER_JOB, run.token, f"127.0.0.1:{server.server_port}")
            run.connect.create_connector(clash, config)

            def task_state() -> str | None:
                try:  # 404 until the worker has written the connector's first status
                    tasks = run.connect.status(clash).get("tasks", [])
                except ConnectError:
                    return None
                return str(tasks[0]["state"]) if tasks else None

            wait(
                "the clashing connector's task FAILED",
                run,
                lambda: task_state() == "FAILED",
                seen=lambda: run.connect.status(clash),
            )

            alert = wait(
                "CdcflowConnectorTaskFailed firing",
                run,
                firing(api, "CdcflowConnectorTaskFailed", connector=clash),
                timeout_s=120,
                seen=lambda: (api.alerts(), api.query("cdcflow_connect_task_state")),
            )
            assert (alert["labels"]["task"], alert["labels"]["state"]) == ("0", "FAILED")
            assert alert["annotations"]["summary"] == f"connector {clash} task 0 FAILED"
            # The connector that holds the slot is not the one alerted on.
            alerted = {a["labels"].get("connector") for a in api.alerts()}
            assert run.connector not in alerted
            running = api.query(
                f'cdcflow_connect_task_state{{connector="{run.connector}",state="RUNNING"}}'
            )
            assert len(running) == 1
        finally:
            with contextlib.suppress(ConnectError):
                run.connect.delete(clash)
            server.shutdown()
            server.server_close()
