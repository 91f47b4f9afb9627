"""``cdcflow projections``: run, inspect, checkpoint and rebuild read models."""

from __future__ import annotations

import signal
import sys
import threading
import time

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.errors import CdcflowError
from pipeline.replay.database import connect, read_model_dsn
from pipeline.replay.errors import ProjectionError
from pipeline.replay.positions import format_ms, parse_timestamp
from pipeline.replay.progress import format_duration
from pipeline.replay.projection import Projection, load_projections, load_upcasters, select
from pipeline.replay.rebuild import rebuild as rebuild_projection
from pipeline.replay.runner import RunStats, run_projections
from pipeline.replay.status import projection_status
from pipeline.replay.store import ReadModelStore
from pipeline.replay.stream import EventStream


def _chosen(ctx: CliContext, names: tuple[str, ...]) -> list[Projection]:
    return select(load_projections(ctx.settings.projections.modules), names)


@click.group(name="projections")
def command() -> None:
    """Read models (CQRS) kept in PostgreSQL from the event topics.

    \b
    Each event is applied in the same database transaction as the
    projection's tracking position, so a restart never applies an event
    twice or skips one. Projections (a list 'projections') and upcasters of
    old event versions (an 'upcasters' registry) are declared in the modules
    of projections.modules (default: the shop's).
    """


@command.command(name="list")
@pass_cli
def list_(ctx: CliContext) -> None:
    """The declared projections, their topics, tables and event types."""
    found = load_projections(ctx.settings.projections.modules)
    rows = [
        {
            "projection": p.name,
            "topics": ",".join(p.topics),
            "tables": ",".join(p.table_names().values()),
            "handles": ",".join(sorted(t.__name__ for t in p.event_types)),
        }
        for p in found.values()
    ]
    if ctx.json_output:
        ctx.emit_json(rows)
    else:
        click.echo(table(rows, ["projection", "topics", "tables", "handles"]))


@command.command()
@click.argument("names", nargs=-1)
@click.option(
    "--stop-when-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop once no event has arrived for this long (tests, one-off catch-ups).",
)
@pass_cli
def run(ctx: CliContext, names: tuple[str, ...], stop_when_idle: float | None) -> None:
    """Run projections (all by default) until interrupted; one thread each.

    Each runner assigns every partition of its topics at its tracked position
    and applies batches of events (projections.batch_size) with their
    positions in one transaction. SIGTERM / Ctrl-C commit the batch in hand
    and stop. If one projection fails (a handler error, an event that does
    not decode, the database gone), all stop and the exit code is 1; a
    restart resumes each at its tracked position.
    """
    chosen = _chosen(ctx, names)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"running {', '.join(p.name for p in chosen)}", err=True)
    upcasters = load_upcasters(ctx.settings.projections.modules)
    results = run_projections(
        ctx.settings,
        chosen,
        stop,
        stop_when_idle_s=stop_when_idle,
        upcasters=upcasters,
        stop_all_on_error=True,
    )
    _report_runs(ctx, results)
    failed = [r for r in results if r.error is not None]
    if failed:
        first = failed[0].error
        if isinstance(first, CdcflowError):
            raise first
        raise ProjectionError(f"projection {failed[0].name} stopped: {first}") from first


def _report_runs(ctx: CliContext, results: list[RunStats]) -> None:
    if ctx.json_output:
        ctx.emit_json([r.as_dict() for r in results])
        return
    rows = [
        {**r.as_dict(), "error": str(r.error).splitlines()[0] if r.error else ""} for r in results
    ]
    click.echo(
        table(
            rows,
            ["projection", "applied", "repeated", "batches", "checkpoints", "seconds", "error"],
        )
    )


@command.command()
@click.argument("names", nargs=-1)
@click.option("--partitions", is_flag=True, help="One row per partition.")
@pass_cli
def status(ctx: CliContext, names: tuple[str, ...], partitions: bool) -> None:
    """How far behind each projection is (events and seconds), and whether it runs.

    \b
    Events behind: end offset minus the next offset to apply (an upper
    bound while behind: transaction markers count as offsets; exactly 0 when
    caught up). Seconds behind: age of the oldest event not yet applied.
    """
    result = projection_status(ctx.settings, _chosen(ctx, names))
    if ctx.json_output:
        ctx.emit_json([s.as_dict() for s in result])
        return
    rows = []
    for s in result:
        state = "rebuilding" if s.rebuilding_pid else "running" if s.running_pid else "stopped"
        if s.note:
            state += f" ({s.note})"
        rows.append(
            {
                "projection": s.name,
                "state": state,
                "generation": s.generation,
                "applied": s.applied,
                "events behind": s.behind,
                "seconds behind": f"{s.seconds_behind:.1f}",
                "checkpoints": s.checkpoints,
                "newest checkpoint": s.newest_checkpoint.isoformat(timespec="seconds")
                if s.newest_checkpoint
                else "-",
            }
        )
    click.echo(
        table(
            rows,
            [
                "projection",
                "state",
                "generation",
                "applied",
                "events behind",
                "seconds behind",
                "checkpoints",
                "newest checkpoint",
            ],
        )
    )
    if partitions:
        prow = [
            {
                "projection": s.name,
                "partition": f"{p.topic}[{p.partition}]",
                "next offset": p.next_offset,
                "end offset": p.end_offset,
                "behind": p.behind,
                "seconds": f"{p.seconds_behind(s.now_ms):.1f}",
                "applied": p.applied,
            }
            for s in result
            for p in s.partitions
        ]
        click.echo("")
        click.echo(
            table(
                prow,
                [
                    "projection",
                    "partition",
                    "next offset",
                    "end offset",
                    "behind",
                    "seconds",
                    "applied",
                ],
            )
        )


@command.command()
@click.argument("names", nargs=-1)
@pass_cli
def checkpoint(ctx: CliContext, names: tuple[str, ...]) -> None:
    """Copy the read model now, as a starting point for 'rebuild --from' a later time."""
    settings = ctx.settings
    rows = []
    with connect(read_model_dsn(settings)) as conn:
        for projection in _chosen(ctx, names):
            store = ReadModelStore(conn, settings.projections.db_schema, projection)
            store.ensure()
            ck = store.checkpoint(settings.projections.checkpoints_keep)
            rows.append(
                {
                    "projection": projection.name,
                    "checkpoint": ck.id,
                    "taken at": ck.taken_at.isoformat(timespec="seconds"),
                }
            )
    if ctx.json_output:
        ctx.emit_json(rows)
    else:
        click.echo(table(rows, ["projection", "checkpoint", "taken at"]))


@command.command()
@click.argument("name")
@click.option(
    "--from",
    "from_ts",
    metavar="TIME",
    help="Replay from TIME on top of the newest checkpoint before it "
    "(ISO 8601, e.g. 2026-11-01T12:00:00Z). Default: from the beginning, empty tables.",
)
@pass_cli
def rebuild(ctx: CliContext, name: str, from_ts: str | None) -> None:
    """Rebuild a read model into shadow tables and swap them in atomically.

    \b
    The live read model keeps answering (and its runner keeps running)
    until the swap, which renames the tables in one transaction; queries
    that arrive meanwhile wait milliseconds, then read the new tables.
    With --from TIME the shadow starts from the newest checkpoint holding
    nothing at or after TIME and replays from its positions.
    """
    (projection,) = _chosen(ctx, (name,))
    from_ms = parse_timestamp(from_ts) if from_ts else None
    last = [0.0]
    tty = sys.stderr.isatty()

    def progress(stats: RunStats, stream: EventStream) -> None:
        now = time.monotonic()
        if now - last[0] < (0.25 if tty else 5.0):
            return
        last[0] = now
        left = stream.remaining()
        line = (
            f"{name}: {stats.applied:,} events applied, {left:,} offsets left"
            if left is not None
            else ""
        )
        click.echo(("\r\x1b[2K" if tty else "") + line, err=True, nl=not tty)

    report = rebuild_projection(ctx.settings, projection, from_ms=from_ms, progress=progress)
    if tty:
        click.echo("", err=True)
    if ctx.json_output:
        ctx.emit_json(report.as_dict())
        return
    start = (
        f"checkpoint {report.checkpoint.id} taken "
        f"{report.checkpoint.taken_at.isoformat(timespec='seconds')}"
        if report.checkpoint
        else "the beginning"
    )
    click.echo(
        f"{name}: generation {report.generation} swapped in; replayed from {start}"
        + (f" (for --from {format_ms(from_ms)})" if from_ms is not None else "")
    )
    click.echo(
        f"  {report.stats.applied:,} events applied in {format_duration(report.fill_seconds)}"
        f" ({report.caught_up_in_swap} caught up inside the swap, which took "
        f"{report.swap_seconds * 1000:.0f} ms in {report.swap_attempts} attempt(s))"
    )
    if not report.retired:
        click.echo("  the old tables are still in use; the next rebuild drops them")
