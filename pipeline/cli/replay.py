"""``cdcflow replay``: read event topics from a point in time (or offsets), decode every event."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.domain import domain_events
from pipeline.events.naming import event_topic
from pipeline.replay.errors import BadPosition
from pipeline.replay.positions import EndAt, StartAt, format_ms, parse_offsets, parse_timestamp
from pipeline.replay.progress import Progress, Summary
from pipeline.replay.projection import load_upcasters
from pipeline.replay.replay import gc_tuned, replay
from pipeline.replay.runner import make_decoder
from pipeline.replay.stream import Delivered, EventStream
from pipeline.serde.avro import readable


def _start(
    from_beginning: bool, from_ts: str | None, from_offsets: str | None, topics: list[str]
) -> StartAt:
    chosen = [
        name
        for name, on in (
            ("--from-beginning", from_beginning),
            ("--from", from_ts),
            ("--from-offsets", from_offsets),
        )
        if on
    ]
    if len(chosen) > 1:
        raise BadPosition(f"choose one of {', '.join(chosen)}")
    if from_ts:
        return StartAt.at(parse_timestamp(from_ts))
    if from_offsets:
        return StartAt(offsets=parse_offsets(from_offsets, topics))
    return StartAt.beginning()


class _ProgressLine:
    """Progress on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = 0.25 if self.tty else 5.0
        self.last = 0.0

    def __call__(self, progress: Progress, stream: EventStream, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < self.every):
            return
        self.last = now
        line = progress.line(now)
        if self.tty:
            click.echo("\r\x1b[2K" + line, err=True, nl=final)
        else:
            click.echo(line, err=True)


def _summary_text(summary: Summary, ends: dict[tuple[str, int], int]) -> str:
    lines = [
        f"{summary.events:,} events in {summary.seconds:.2f}s = {summary.rate:,.0f} events/s"
        + (f" ({summary.skipped} of unknown types skipped)" if summary.skipped else "")
    ]
    if summary.first_ms is not None:
        lines.append(
            f"record timestamps {format_ms(summary.first_ms)} .. {format_ms(summary.last_ms)}"
        )
    rows = [{"event type": t, "events": n} for t, n in sorted(summary.per_type.items())]
    if rows:
        lines += ["", table(rows, ["event type", "events"])]
    parts = [
        {
            "partition": f"{t}[{p}]",
            "events": summary.per_partition.get((t, p), 0),
            "end offset": ends.get((t, p), "-"),
        }
        for t, p in sorted(set(summary.per_partition) | set(ends))
    ]
    if parts:
        lines += ["", table(parts, ["partition", "events", "end offset"])]
    return "\n".join(lines)


@click.command(name="replay")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Event topic to read (repeatable). Default: every topic of the domain's events.",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the beginning of every partition (the default).",
)
@click.option(
    "--from",
    "from_ts",
    metavar="TIME",
    help="Start at the first event at or after TIME (ISO 8601, e.g. 2026-11-01T12:00:00Z), "
    "on every partition.",
)
@click.option(
    "--from-offsets",
    metavar="SPEC",
    help="Start at offsets: PARTITION:OFFSET,... (one topic) or TOPIC:PARTITION:OFFSET,...; "
    "partitions not named start at their beginning.",
)
@click.option(
    "--until",
    "until_ts",
    metavar="TIME",
    help="Stop before the first event at or after TIME. Default: the end when the replay started.",
)
@click.option("--follow", is_flag=True, help="Do not stop at the end; go on until interrupted.")
@click.option(
    "--print",
    "print_events",
    is_flag=True,
    help="Write every event to stdout, one JSON object a line.",
)
@click.option(
    "--skip-unknown", is_flag=True, help="Count events of unknown types instead of failing on them."
)
@click.option(
    "--batch-size",
    default=5000,
    show_default=True,
    type=click.IntRange(1),
    help="Records taken from the consumer at a time.",
)
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
@pass_cli
def command(
    ctx: CliContext,
    topics: tuple[str, ...],
    from_beginning: bool,
    from_ts: str | None,
    from_offsets: str | None,
    until_ts: str | None,
    follow: bool,
    print_events: bool,
    skip_unknown: bool,
    batch_size: int,
    no_progress: bool,
) -> None:
    """Replay domain events from a point in time, across all partitions.

    \b
    Partitions are assigned by hand (no consumer group, nothing committed):
    --from TIME finds each partition's first event at or after TIME with
    offsets_for_times. TIME is the Kafka record time, when the transformer
    produced the event, never before the source commit it tells of. Events
    are decoded through the registry into the domain's event classes
    (older versions upcast). Progress (events, events/s, time left from the
    end offsets) goes to stderr; a summary (events per type and partition,
    seconds, events/s) ends the run.
    """
    settings = ctx.settings
    chosen = list(dict.fromkeys(topics)) or sorted(
        {event_topic(et) for et in domain_events(settings.transformer.domain)}
    )
    start = _start(from_beginning, from_ts, from_offsets, chosen)
    if follow and until_ts:
        raise BadPosition("--follow and --until exclude each other")
    end = None if follow else EndAt(timestamp_ms=parse_timestamp(until_ts) if until_ts else None)
    decoder = make_decoder(
        settings, upcasters=load_upcasters(settings.projections.modules), skip_unknown=skip_unknown
    )
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    show = _ProgressLine(enabled=not no_progress and not ctx.json_output)
    seen: dict[str, Any] = {}

    def write(delivered: list[Delivered]) -> None:
        for d in delivered:
            click.echo(
                json.dumps(
                    {
                        "topic": d.topic,
                        "partition": d.partition,
                        "offset": d.offset,
                        "timestamp": format_ms(d.timestamp_ms),
                        "type": type(d.event).__name__,
                        "event": readable(d.event.model_dump(mode="python")),
                    }
                )
            )

    def on_progress(progress: Progress, stream: EventStream) -> None:
        seen["progress"], seen["stream"] = progress, stream
        show(progress, stream)

    try:
        with gc_tuned():
            summary = replay(
                settings.kafka.client_config("consumer"),
                chosen,
                decoder,
                start=start,
                end=end,
                batch_size=batch_size,
                on_events=write if print_events else None,
                on_progress=on_progress,
                should_stop=stop.is_set,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "progress" in seen:
        show(seen["progress"], seen["stream"], final=True)
    ends = dict(seen["stream"].end_offsets) if "stream" in seen else {}
    if ctx.json_output:
        click.echo(
            json.dumps({**summary.as_dict(), "topics": chosen, "interrupted": stop.is_set()}),
            err=print_events,
        )
    else:
        click.echo(
            _summary_text(summary, ends) + ("\n(interrupted)" if stop.is_set() else ""),
            err=print_events,
        )
