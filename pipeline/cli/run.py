"""``cdcflow run``: the transformer daemon."""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from pipeline.cli._context import CliContext, domain_option, pass_cli
from pipeline.connect import ConnectClient, deployed_configs
from pipeline.connect.domain import (
    DomainCheck,
    DomainProblem,
    check_deployed,
    load_description,
    raise_for_split,
)
from pipeline.connect.encoding import reading
from pipeline.errors import CdcflowError, ConfigError, ConnectError
from pipeline.settings import Settings
from pipeline.transformer import BatchResult, Metrics, build_transformer

log = logging.getLogger("cdcflow.transformer")


@click.command(name="run")
@domain_option
@click.option(
    "--instance",
    default="0",
    show_default=True,
    help="This process's stable name in the group; the transactional id is <transactional_id>-<instance>. "
    "Give each concurrent process its own, and a restarted process its old one.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="HTTP port for /metrics, /healthz, /readyz (0: off).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Transformer processes in the group, one per core to use; child i is instance "
    "<instance>-i (metrics on <port>+i). SIGTERM/SIGINT reach every child; the exit code is "
    "the worst child's.",
)
@click.option(
    "--stop-when-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Exit after this many seconds without records (for draining a backlog).",
)
@pass_cli
def command(
    ctx: CliContext,
    domain: str | None,
    instance: str,
    metrics_port: int | None,
    processes: int,
    stop_when_idle: float | None,
) -> None:
    """Run the transformer: CDC records in, Avro domain events out.

    \b
    Consumes the CDC topics (transformer.topics, a regex) as a member of the
    consumer group transformer.group_id, maps each change with the domain's
    rules, and produces the events keyed by aggregate id to
    <domain>.<aggregate>.events inside one Kafka transaction per batch,
    together with the consumed offsets. Records that cannot be decoded,
    mapped or serialized go to the dead-letter topic with headers saying why.
    SIGTERM or Ctrl-C finishes the batch in flight, commits it and exits 0.
    Exit 1 on an error, 3 when fenced by a newer instance with the same id.

    At start, the deployed connectors whose topics it reads are checked
    against the domain: a connector that splits an aggregate's tables over
    topics or partitions is logged with the config that fixes it, and the
    run exits 78 unless transformer.allow_split_aggregates is true. They are
    checked against how records are read too (transformer.cdc_types): a
    connector that leaves the schema out while each record's schema is read
    exits 78; for records without a schema, the value handling
    (time.precision.mode, decimal.handling.mode, ...) is the connector's,
    Debezium's default where it sets none.
    """
    settings = ctx.settings
    if ctx.log_level > logging.INFO:
        logging.getLogger("cdcflow").setLevel(logging.INFO)
    settings = check_connectors_at_start(settings, domain or settings.transformer.domain)
    if processes == 1:
        run_one(settings, domain, instance, metrics_port, stop_when_idle)
        return
    code = run_processes(
        settings,
        processes,
        domain=domain,
        instance=instance,
        metrics_port=metrics_port,
        stop_when_idle=stop_when_idle,
    )
    if code:
        raise click.exceptions.Exit(code)


def run_one(
    settings: Settings,
    domain: str | None,
    instance: str,
    metrics_port: int | None,
    stop_when_idle: float | None,
) -> None:
    """One transformer in this process until SIGTERM/SIGINT (or idle); see ``run``'s help.

    Raises:
        CdcflowError: the transformer's error (TransformerFenced and the others).
    """
    metrics = Metrics()
    transformer = build_transformer(settings, domain=domain, instance=instance, metrics=metrics)
    port = settings.transformer.metrics_port if metrics_port is None else metrics_port
    if port:
        bound = metrics.serve(port)
        log.info("metrics on http://0.0.0.0:%d/metrics", bound)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: finishing the batch in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    last_records = time.monotonic()
    last_report = time.monotonic()

    def on_batch(res: BatchResult) -> None:
        nonlocal last_records, last_report
        last_records = time.monotonic()
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            t = metrics.totals()
            log.info(
                "consumed %d, produced %d events, skipped %d, dead-lettered %d",
                sum(t["consumed"].values()),
                sum(t["produced"].values()),
                sum(t["skipped"].values()),
                sum(t["dead_lettered"].values()),
            )

    if stop_when_idle is not None:

        def idle_watch() -> None:
            while not stop.wait(0.5):
                if time.monotonic() - last_records > stop_when_idle:
                    log.info("idle for %.0fs: stopping", stop_when_idle)
                    stop.set()

        threading.Thread(target=idle_watch, daemon=True).start()
    try:
        # An error ends the command with its own exit code (TransformerFenced: 3).
        transformer.run(stop, on_batch=on_batch)
    finally:
        metrics.close()
        click.echo(
            json.dumps({"transformer": transformer.transactional_id, **metrics.totals()}), err=True
        )


def child_instance(instance: str, index: int) -> str:
    """The instance name of child ``index`` of ``run --processes`` (its transactional id's end)."""
    return f"{instance}-{index}"


def worst_exit_code(codes: list[int]) -> int:
    """The exit code of ``run --processes``: the highest of its children's (0 when all are 0).

    A child killed by signal N (a negative code from :mod:`multiprocessing`)
    counts as 128 + N, as a shell reports it.
    """
    return max((128 - c if c < 0 else c for c in codes), default=0)


def _child(instance: str, run: Callable[[], None]) -> None:
    # A child's error is reported as the single-process command reports it.
    try:
        run()
    except CdcflowError as exc:
        log.error("transformer %s: %s", instance, exc.message)
        if exc.hint:
            log.error("  hint: %s", exc.hint)
        sys.exit(exc.exit_code)
    except Exception:
        log.exception("transformer %s failed", instance)
        sys.exit(1)


def run_processes(
    settings: Settings,
    processes: int,
    *,
    domain: str | None = None,
    instance: str = "0",
    metrics_port: int | None = None,
    stop_when_idle: float | None = None,
) -> int:
    """Run ``processes`` transformers of one consumer group, each in a process of its own.

    Each child is the transformer of ``run`` with the instance name
    ``<instance>-<i>`` (its transactional id and static group membership) and,
    when metrics are served, the port ``<port> + i``. The children are forked
    before any Kafka client exists, so they share nothing but the group: Kafka
    gives each its share of the CDC topics' partitions. SIGTERM and SIGINT are
    forwarded to every child (each commits its batch in flight). When a child
    fails, the others are stopped the same way, so the whole command can be
    restarted. Returns the worst exit code (:func:`worst_exit_code`).
    """
    port = settings.transformer.metrics_port if metrics_port is None else metrics_port
    # Fork: a child inherits the imported domain and settings as they are (spawn
    # would import them again from a fresh interpreter).
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(
            target=_child,
            args=(
                child_instance(instance, i),
                functools.partial(
                    run_one,
                    settings,
                    domain,
                    child_instance(instance, i),
                    port + i if port else 0,
                    stop_when_idle,
                ),
            ),
            name=f"transformer-{child_instance(instance, i)}",
        )
        for i in range(processes)
    ]
    stopping = threading.Event()

    def forward(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping %d transformers", signal.Signals(signum).name, processes)
        stopping.set()
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        log.info(
            "%d transformers running: %s",
            processes,
            ", ".join(f"{c.name} (pid {c.pid})" for c in children),
        )
        while any(c.exitcode is None for c in children):
            for child in children:
                child.join(0.2)
                if child.exitcode not in (None, 0) and not stopping.is_set():
                    log.error("%s exited %s: stopping the others", child.name, child.exitcode)
                    forward(signal.SIGTERM, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return worst_exit_code([c.exitcode or 0 for c in children])


def check_connectors_at_start(settings: Settings, module: str) -> Settings:
    """Check the deployed connectors the run reads (see ``run``'s help); the settings to run with.

    Refuses connectors that split an aggregate, or write records the
    transformer would read wrong (:mod:`pipeline.connect.encoding`). With
    ``transformer.cdc_types: catalogue``, the returned settings carry the
    connectors' value handling. Connect being unreachable is a warning: the
    run goes on with the settings as they are.

    Raises:
        ConfigError: a deployed connector splits an aggregate (and
            transformer.allow_split_aggregates is false), or writes its records
            unlike the transformer reads them.
    """
    checks = feeding_connectors(settings, module)
    if checks is None:
        return settings
    check_routing(checks, settings, module)
    return reading_connectors(settings, checks)


def feeding_connectors(settings: Settings, module: str) -> list[DomainCheck] | None:
    """The deployed connectors whose topics the transformer reads; None when Connect does not answer."""
    description = load_description(module)
    try:
        with ConnectClient.from_settings(settings.connect) as client:
            deployed = deployed_configs(client)
    except ConnectError as exc:
        log.warning("cannot check the connectors' routing against the domain: %s", exc.message)
        return None
    return check_deployed(deployed, description, settings.transformer)


def reading_connectors(settings: Settings, checks: list[DomainCheck]) -> Settings:
    """``settings`` to read these connectors' records with (:func:`pipeline.connect.encoding.reading`).

    Raises:
        ConfigError: the connectors write records unlike the transformer reads them.
    """
    ran = reading(settings, {c.connector: c.config for c in checks})
    if ran is not settings:
        log.info(
            "records without a schema are decoded with the value handling of %s: %s",
            ", ".join(c.connector for c in checks),
            ", ".join(f"{k}={v}" for k, v in ran.transformer.cdc_value_modes.items()),
        )
    return ran


def check_routing(checks: list[DomainCheck], settings: Settings, module: str) -> None:
    """Refuse connectors that split an aggregate (see ``run``'s help)."""
    try:
        raise_for_split(checks)
    except DomainProblem as exc:
        if settings.transformer.allow_split_aggregates:
            log.warning("%s\n(transformer.allow_split_aggregates is set: starting anyway)", exc)
            return
        log.error("%s", exc.message)
        raise ConfigError(
            "a deployed connector splits an aggregate of the domain (logged above)",
            hint="set 'routing: derive' in the connector file and run 'cdcflow connectors "
            "apply', or set transformer.allow_split_aggregates "
            "(CDCFLOW_TRANSFORMER__ALLOW_SPLIT_AGGREGATES=true) to start anyway",
        ) from exc
    for check in checks:
        log.info("connector %s keeps every aggregate of %s in order", check.connector, module)
