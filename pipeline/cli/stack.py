"""``cdcflow stack``: the local development stack."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.settings import load_settings
from pipeline.stack import LocalStack


def _progress(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


@click.group(name="stack")
def command() -> None:
    """The local stack: PostgreSQL, Kafka (KRaft), Connect + Debezium, schema registry, Prometheus.

    \b
    Plain processes under one state directory (CDCFLOW_STACK__HOME, default
    .cdcflow). Versions are pinned in deploy/local/pom.xml; artifacts are
    fetched from Maven Central once and cached (CDCFLOW_STACK__CACHE).
    Ports: CDCFLOW_STACK__POSTGRES_PORT (55432), __KAFKA_PORT (9092),
    __CONTROLLER_PORT (9093), __CONNECT_PORT (8083), __REGISTRY_PORT (8080),
    __PROMETHEUS_PORT (9090);
    a cluster's nodes: __CLUSTER_KAFKA_PORT (19092) and __CLUSTER_CONTROLLER_PORT
    (19192) and up.
    """


@command.command()
@click.option(
    "--brokers",
    type=click.IntRange(1, 5),
    default=None,
    help="Kafka nodes (stack.brokers): 3 runs a KRaft cluster, topics replicated 3 times "
    "with 2 in sync.",
)
@click.option(
    "--security",
    type=click.Choice(["none", "sasl_ssl"]),
    default=None,
    help="sasl_ssl (stack.security): Kafka over SASL/SCRAM + TLS, Connect and the "
    "registry with basic auth; credentials generated into the state directory.",
)
@pass_cli
def up(ctx: CliContext, brokers: int | None, security: str | None) -> None:
    """Fetch what is missing, start every component, wait until all are ready.

    Exits 0 when every component answers; 1 with the failing component's
    log tail when one does not come up. A cluster or a secured stack also
    writes <home>/secrets/client.env, the CDCFLOW_* variables its clients need.
    """
    chosen = {k: v for k, v in {"brokers": brokers, "security": security}.items() if v is not None}
    # Without options, a stack that is up (or was left running) keeps its layout.
    stack = (
        LocalStack(load_settings(ctx.config_file, stack=chosen))
        if chosen
        else LocalStack.in_home(ctx.settings)
    )
    stack.up(progress=_progress)
    _show(ctx, stack)


@command.command()
@pass_cli
def down(ctx: CliContext) -> None:
    """Stop the components this stack started (found by their pid files)."""
    stopped = LocalStack.in_home(ctx.settings).down(progress=_progress)
    if ctx.json_output:
        ctx.emit_json({"stopped": stopped})
    elif not stopped:
        click.echo("nothing was running")


@command.command()
@pass_cli
def status(ctx: CliContext) -> None:
    """Each component: healthy or not, version, port, pid, resident memory.

    Exits 0 when every component is healthy, 1 otherwise. A cluster shows
    one row per Kafka node.
    """
    stack = LocalStack.in_home(ctx.settings)
    if not _show(ctx, stack):
        sys.exit(1)


def _show(ctx: CliContext, stack: LocalStack) -> bool:
    rows = stack.status()
    if ctx.json_output:
        ctx.emit_json(rows)
    else:
        for row in rows:
            row["rss"] = f"{row['rss_mib']} MiB" if row["rss_mib"] is not None else "-"
            row["pid"] = row["pid"] or "-"
            mark = "ok" if row["healthy"] else "DOWN"
            row["health"] = (
                click.style(mark, fg="green" if row["healthy"] else "red")
                if sys.stdout.isatty()
                else mark
            )
        click.echo(table(rows, ["component", "health", "version", "port", "pid", "rss", "state"]))
    return all(r["healthy"] for r in rows)


@command.command()
@click.argument("component", metavar="COMPONENT")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@pass_cli
def logs(ctx: CliContext, component: str, lines: int, follow: bool) -> None:
    """Print the log of one component: postgres, kafka (a cluster's: kafka-1, kafka-2, ...),
    connect, registry or prometheus."""
    stack = LocalStack.in_home(ctx.settings)
    names = [comp.name for comp in stack.components]
    if component not in names:
        raise click.BadParameter(f"one of {', '.join(names)}", param_hint="COMPONENT")
    comp = stack.component(component)
    path = comp.info()["log"]
    cmd = ["tail", "-n", str(lines), *(["-F"] if follow else []), path]
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(cmd, check=False)
