"""``cdcflow demo``: the whole pipeline on the bundled shop domain."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
import psycopg

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.domains.shop.source import apply_schema, seed
from pipeline.domains.shop.workload import OPERATIONS, Workload, WorkloadReport
from pipeline.errors import CdcflowError
from pipeline.settings import Settings
from pipeline.stack import LocalStack


def _progress(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(settings.source.dsn(), autocommit=True)
    except psycopg.OperationalError as exc:
        raise CdcflowError(
            f"cannot connect to the source database {settings.source.host}:{settings.source.port}"
            f"/{settings.source.database}: {str(exc).strip()}",
            hint="start the local stack with 'cdcflow stack up', or check CDCFLOW_SOURCE__*",
        ) from exc


def _setup(settings: Settings) -> dict[str, int]:
    with _connect(settings) as conn:
        apply_schema(conn)
        return seed(conn)


def _load(settings: Settings, rate: float, duration: float | None, count: int | None, rng_seed: int | None) -> WorkloadReport:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(r: WorkloadReport) -> None:
        _progress(f"workload: {r.total} operations in {r.seconds:.0f}s ({r.rate:.0f}/s)")

    try:
        with _connect(settings) as conn:
            return Workload(conn, rng_seed).run(rate, duration, count, progress=show, should_stop=stop.is_set)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_report(ctx: CliContext, report: WorkloadReport) -> None:
    if ctx.json_output:
        ctx.emit_json(report.as_dict())
        return
    rows = [{"operation": n, "done": report.operations[n], "nothing to do": report.skipped[n]} for n in OPERATIONS]
    click.echo(table(rows, ["operation", "done", "nothing to do"]))
    click.echo(f"{report.total} operations in {report.seconds:.1f}s = {report.rate:.1f}/s")


@click.group(name="demo", invoke_without_command=True)
@click.option("--rate", default=50.0, show_default=True, help="Business operations per second.")
@click.option("--duration", default=30.0, show_default=True, help="Seconds of workload.")
@pass_cli
@click.pass_context
def command(click_ctx: click.Context, ctx: CliContext, rate: float, duration: float) -> None:
    """The whole pipeline on the bundled shop domain.

    \b
    Without a subcommand: bring the local stack up, create and seed the shop
    database, then run the workload of business operations. Subcommands run
    one step each.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    settings = ctx.settings
    click.echo("== 1/3 local stack", err=True)
    LocalStack(settings).up(progress=_progress)
    click.echo("== 2/3 shop database: schema and seed data", err=True)
    added = _setup(settings)
    _progress(f"seeded: {added}")
    click.echo(f"== 3/3 workload: {rate:g} operations/s for {duration:g}s", err=True)
    _print_report(ctx, _load(settings, rate, duration, None, None))


@command.command()
@pass_cli
def setup(ctx: CliContext) -> None:
    """Create the shop schema and seed customers and products (idempotent)."""
    added = _setup(ctx.settings)
    if ctx.json_output:
        ctx.emit_json(added)
    else:
        click.echo(f"schema applied; rows added: {added}")


@command.command()
@click.option("--rate", default=200.0, show_default=True, help="Business operations per second.")
@click.option("--duration", type=float, default=None, help="Seconds to run (default: until --count or Ctrl-C).")
@click.option("--count", type=int, default=None, help="Stop after this many operations.")
@click.option("--seed", "rng_seed", type=int, default=None, help="Random seed, for a repeatable sequence.")
@pass_cli
def load(ctx: CliContext, rate: float, duration: float | None, count: int | None, rng_seed: int | None) -> None:
    """Perform shop business operations at a chosen rate, one transaction each.

    Register customers, change emails, place orders (with lines), pay, ship,
    cancel, change prices. Prints what was done and the rate reached.
    """
    if duration is None and count is None:
        duration = 60.0
    _print_report(ctx, _load(ctx.settings, rate, duration, count, rng_seed))
