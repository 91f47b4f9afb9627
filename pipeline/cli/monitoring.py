"""``cdcflow exporter``: replication slots and Connect states for Prometheus."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.monitoring.exporter import exporter_registry, serve
from pipeline.stack.prometheus import EXPORTER_PORT


def _samples(text: str) -> list[dict[str, Any]]:
    return [
        {"metric": sample.name, "labels": sample.labels, "value": sample.value}
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


@click.command(name="exporter")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=EXPORTER_PORT,
    show_default=True,
    help="Port of GET /metrics (0 picks a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--once", is_flag=True, help="Read once, print the samples (or -o json) and exit; no server."
)
@pass_cli
def command(ctx: CliContext, port: int, host: str, once: bool) -> None:
    """Serve the source's replication slots and Connect's states as Prometheus metrics.

    \b
    Each scrape reads pg_replication_slots on the source server (source.*
    settings) and GET /connectors?expand=status on Connect (connect.url):
      cdcflow_replication_slot_wal_retained_bytes{slot,database,plugin}
      cdcflow_replication_slot_confirmed_lag_bytes, cdcflow_replication_slot_active
      cdcflow_connect_connector_state{connector,state,worker} 1
      cdcflow_connect_task_state{connector,task,state,worker} 1
      cdcflow_exporter_source_up{source=postgres|connect}
    The alert rules of deploy/monitoring/alerts.yml use them.

    \b
    Exit codes: 0 stopped by SIGTERM or Ctrl-C (--once: both sources read);
    1 --once and a source could not be read, or the port cannot be bound;
    78 bad configuration.
    """
    registry = exporter_registry(ctx.settings)
    if once:
        samples = _samples(generate_latest(registry).decode())
        if ctx.json_output:
            ctx.emit_json(samples)
        else:
            rows = [
                {
                    "metric": s["metric"],
                    "labels": ",".join(f"{k}={v}" for k, v in s["labels"].items()),
                    "value": f"{s['value']:g}",
                }
                for s in samples
            ]
            click.echo(table(rows, ["metric", "labels", "value"]))
        down = [
            s for s in samples if s["metric"] == "cdcflow_exporter_source_up" and not s["value"]
        ]
        if down:
            sys.exit(1)
        return
    try:
        server = serve(registry, port, host)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = server.server_address[1]
    click.echo(f"cdcflow exporter: http://{host}:{bound}/metrics", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
