"""``cdcflow demo``: the whole pipeline on a domain that brings a demo (the bundled shop).

The domain is the transformer's (``transformer.domain``); what is domain
specific — source tables and seed, the workload, the read-model report —
is its :class:`~pipeline.domain.Demo` (``Domain(..., demo=...)``).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import click
import psycopg

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.domain import Demo, Domain, WorkloadRun, load_domain
from pipeline.errors import CdcflowError, ConfigError
from pipeline.settings import Settings
from pipeline.stack import LocalStack

STEPS = 7


def _progress(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


def _step(n: int, title: str) -> None:
    click.secho(f"== {n}/{STEPS} {title}", bold=True, err=True)


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(settings.source.dsn(), autocommit=True)
    except psycopg.OperationalError as exc:
        raise CdcflowError(
            f"cannot connect to the source database {settings.source.host}:{settings.source.port}"
            f"/{settings.source.database}: {str(exc).strip()}",
            hint="start the local stack with 'cdcflow stack up', or check CDCFLOW_SOURCE__*",
        ) from exc


def _domain(settings: Settings) -> tuple[Domain, Demo]:
    """The transformer's domain and its demo.

    Raises:
        ConfigError: the domain brings no demo.
    """
    domain = load_domain(settings.transformer.domain)
    if domain.demo is None:
        raise ConfigError(
            f"domain {domain.name!r} ({settings.transformer.domain}) brings no demo",
            hint="pass Domain(..., demo=...), or run the bundled shop's: "
            "unset CDCFLOW_TRANSFORMER__DOMAIN",
        )
    return domain, domain.demo


def _setup(settings: Settings) -> dict[str, int]:
    _, demo = _domain(settings)
    with _connect(settings) as conn:
        return demo.setup(conn)


def _load(
    settings: Settings,
    rate: float,
    duration: float | None,
    count: int | None,
    rng_seed: int | None,
    stop: threading.Event | None = None,
    show: Any = None,
) -> Any:
    stop = stop or threading.Event()
    _, demo = _domain(settings)

    def default_show(r: Any) -> None:
        _progress(f"workload: {r.total} operations in {r.seconds:.0f}s ({r.rate:.0f}/s)")

    with _connect(settings) as conn:
        run = WorkloadRun(
            rate,
            duration=duration,
            count=count,
            rng_seed=rng_seed,
            progress=show or default_show,
            should_stop=stop.is_set,
        )
        return demo.run_workload(conn, run)


def _print_report(ctx: CliContext, operations: Sequence[str], report: Any) -> None:
    if ctx.json_output:
        ctx.emit_json(report.as_dict())
        return
    rows = [
        {"operation": n, "done": report.operations[n], "nothing to do": report.skipped[n]}
        for n in operations
    ]
    click.echo(table(rows, ["operation", "done", "nothing to do"]))
    click.echo(f"{report.total} operations in {report.seconds:.1f}s = {report.rate:.1f}/s")


def _cli(ctx: CliContext, *args: str) -> None:
    """Run one cdcflow command in this process, as a step of the demo."""
    from pipeline.cli import cli

    argv = [*(["--config", ctx.config_file] if ctx.config_file else []), *args]
    try:
        cli.main(args=argv, prog_name="cdcflow", standalone_mode=False, obj=None)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise CdcflowError(f"demo step 'cdcflow {' '.join(args)}' exited {exc.code}") from exc


class _SampleTail(threading.Thread):
    """Prints the first domain events as they arrive, decoded through the registry."""

    def __init__(
        self, settings: Settings, topics: str, stop: threading.Event, samples: int = 8
    ) -> None:
        super().__init__(name="demo-tail", daemon=True)
        self.settings, self.topics, self.stop, self.samples = settings, topics, stop, samples

    def run(self) -> None:
        import json
        import uuid

        from confluent_kafka import Consumer
        from confluent_kafka.schema_registry import SchemaRegistryClient

        from pipeline.serde import EventDeserializer
        from pipeline.serde.avro import readable
        from pipeline.transformer.batch import where

        consumer = Consumer(
            self.settings.kafka.client_config("consumer")
            | {
                "group.id": f"cdcflow-demo-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                # On a fresh stack the event topics are created as the transformer
                # starts, after this subscription: see them within a second.
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        decode = EventDeserializer(SchemaRegistryClient(self.settings.registry.client_config()))
        consumer.subscribe([self.topics])
        shown = 0
        try:
            while shown < self.samples and not self.stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                topic, partition, _ = where(msg)
                event = readable(decode(msg.value() or b"", topic))
                meta = event.pop("metadata", {})
                click.echo(
                    f"  event  {topic}[{partition}] key={(msg.key() or b'').decode()} "
                    f"{meta.get('event_type')}: {json.dumps(event)}",
                    err=True,
                )
                shown += 1
        finally:
            consumer.close()


@click.group(name="demo", invoke_without_command=True)
@click.option("--rate", default=50.0, show_default=True, help="Business operations per second.")
@click.option("--duration", default=30.0, show_default=True, help="Seconds of workload.")
@pass_cli
@click.pass_context
def command(click_ctx: click.Context, ctx: CliContext, rate: float, duration: float) -> None:
    """The whole pipeline on the bundled shop domain (or the transformer's domain's demo).

    \b
    Without a subcommand, step by step:
      1. the local stack up (PostgreSQL, Kafka, Connect + Debezium, registry)
      2. the shop database: schema and seed data
      3. the shop's Avro contracts registered (cdcflow schemas register)
      4. the shop's Debezium connector applied (cdcflow connectors apply --wait)
      5. the transformer and the shop's projections (read models in
         PostgreSQL) started, then the workload of business operations,
         with the first domain events printed as they arrive
      6. a summary: operations made, events produced, skipped, dead-lettered
      7. the read models: top customers by total, the latest order timelines
    Subcommands run one step each.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    from pipeline.replay.runner import run_projections
    from pipeline.transformer import Metrics, build_transformer

    settings = ctx.settings
    domain, demo = _domain(settings)
    _step(1, "local stack")
    LocalStack(settings).up(progress=_progress)
    _step(2, f"{demo.title} database: schema and seed data")
    _progress(f"rows added: {_setup(settings)}")
    _step(3, f"Avro contracts of the {demo.title}'s events")
    _cli(ctx, "schemas", "register")
    _step(4, f"Debezium connector for the {demo.title} database")
    _cli(ctx, "connectors", "apply", "--wait")
    _step(5, f"transformer + workload: {rate:g} operations/s for {duration:g}s")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    metrics = Metrics()
    transformer = build_transformer(settings, metrics=metrics)
    failure: list[BaseException] = []

    def run_transformer() -> None:
        try:
            transformer.run(stop)
        except BaseException as exc:  # surfaced in the main thread below
            failure.append(exc)
            stop.set()

    worker = threading.Thread(target=run_transformer, name="transformer", daemon=True)
    worker.start()
    projector = threading.Thread(
        target=run_projections,
        args=(settings, list(domain.projections), stop),
        kwargs={"upcasters": domain.upcasters},
        name="projections",
        daemon=True,
    )
    projector.start()
    tail = _SampleTail(settings, rf"^{re.escape(domain.name)}\..*\.events$", stop)
    tail.start()

    def show(r: Any) -> None:
        t = metrics.totals()
        _progress(
            f"{r.total} operations ({r.rate:.0f}/s) -> {int(sum(t['produced'].values()))} events, "
            f"{int(sum(t['skipped'].values()))} skipped, {int(sum(t['dead_lettered'].values()))} dead-lettered"
        )

    try:
        report = _load(settings, rate, duration, None, None, stop=stop, show=show)
        _progress("workload done; letting the transformer catch up ...")
        _drain(metrics, stop)
        _drain_projections(settings, domain, stop)
    except KeyboardInterrupt:
        report = None
    finally:
        stop.set()
        worker.join(60)
        projector.join(60)
        signal.signal(signal.SIGTERM, previous)
    if failure:
        raise failure[0]
    _step(6, "summary")
    if report is not None:
        _print_report(ctx, demo.operations, report)
    _print_totals(ctx, metrics.totals())
    _step(7, "read models (cdcflow projections status | rebuild)")
    _print_read_models(ctx, demo, demo.read_models(settings))


def _drain(
    metrics: Any, stop: threading.Event, quiet_s: float = 3.0, limit_s: float = 60.0
) -> None:
    """Wait until the transformer has had nothing to do for ``quiet_s``."""
    started = time.monotonic()
    last, since = None, time.monotonic()
    while not stop.is_set() and time.monotonic() - started < limit_s:
        now = sum(metrics.totals()["consumed"].values())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


def _drain_projections(
    settings: Settings, domain: Domain, stop: threading.Event, limit_s: float = 120.0
) -> None:
    """Wait until the domain's projections have applied every event (or ``limit_s`` passes)."""
    from pipeline.replay.status import projection_status

    projections = list(domain.projections)

    started = last = time.monotonic()
    while not stop.is_set() and time.monotonic() - started < limit_s:
        behind = sum(s.behind for s in projection_status(settings, projections))
        if behind == 0:
            return
        if time.monotonic() - last >= 5:
            _progress(f"projections: {behind} events still to apply")
            last = time.monotonic()
        time.sleep(1)


def _print_totals(ctx: CliContext, totals: dict[str, Any]) -> None:
    if ctx.json_output:
        ctx.emit_json(totals)
        return
    produced: Counter[str] = Counter({k: int(v) for k, v in totals["produced"].items()})
    rows = [{"event type": k, "produced": n} for k, n in sorted(produced.items())]
    click.echo()
    click.echo(table(rows, ["event type", "produced"]))
    consumed = int(sum(totals["consumed"].values()))
    mapped = int(sum(totals["mapped"].values()))
    skipped = int(sum(totals["skipped"].values()))
    dead = int(sum(totals["dead_lettered"].values()))
    click.echo(
        f"CDC records consumed {consumed} = mapped {mapped} + skipped {skipped} + dead-lettered {dead}"
        f"{'' if consumed == mapped + skipped + dead else '  (MISMATCH)'}"
    )
    click.echo("Read them back: cdcflow events tail --from-beginning")


def _print_read_models(ctx: CliContext, demo: Demo, report: dict[str, Any]) -> None:
    if ctx.json_output:
        ctx.emit_json(report)
        return
    for line in demo.render(report):
        click.echo(line)


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
@click.option(
    "--duration", type=float, default=None, help="Seconds to run (default: 60, or until --count)."
)
@click.option("--count", type=int, default=None, help="Stop after this many operations.")
@click.option(
    "--seed", "rng_seed", type=int, default=None, help="Random seed, for a repeatable sequence."
)
@pass_cli
def load(
    ctx: CliContext, rate: float, duration: float | None, count: int | None, rng_seed: int | None
) -> None:
    """Perform shop business operations at a chosen rate, one transaction each.

    Register customers, change emails, place orders (with lines), pay, ship,
    cancel, change prices. Prints what was done and the rate reached.
    SIGTERM or Ctrl-C stops after the operation in flight.
    """
    if duration is None and count is None:
        duration = 60.0
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = _load(ctx.settings, rate, duration, count, rng_seed, stop=stop)
        _print_report(ctx, _domain(ctx.settings)[1].operations, report)
    finally:
        signal.signal(signal.SIGTERM, previous)
