"""``cdcflow dlq``: what is dead-lettered, one dead letter in full, and redrive exactly once."""

from __future__ import annotations

import base64
import json
import signal
import threading
from typing import Any

import click
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.cdc import Skip, decode_record
from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.cli.run import feeding_connectors, reading_connectors
from pipeline.dlq import (
    Balance,
    DeadLetter,
    DeadLetterReader,
    Redrive,
    Reprocessor,
    Selection,
    group,
    letter_of,
    parse_since,
    redrive_group,
    redrive_transactional_id,
)
from pipeline.domain import load_domain
from pipeline.errors import CdcflowError, ConfigError, RecordError
from pipeline.serde import EventSerializer
from pipeline.settings import Settings
from pipeline.transformer.factory import decoder_options, identity_catalog


@click.group(name="dlq")
def command() -> None:
    """Dead letters: list them, show one, redrive them through the current domain.

    \b
    The dead-letter topic is transformer.dead_letter_topic. A redrive's
    progress is the offsets of the consumer group <transformer.group_id>-redrive
    on it: the dead letters from those offsets to the end are the ones still
    waiting. Exit codes: 0 done, 1 an error, 2 a usage error, 3 a newer
    redrive of the same topic took over, 78 bad settings, 130 interrupted.
    """


@command.command(name="list")
@pass_cli
def list_(ctx: CliContext) -> None:
    """The dead letters still waiting, grouped by reason, table and rule.

    \b
    One row per group: the reason (<stage>:<error class>, e.g.
    map:MappingError), the source table, the mapping rule that failed (where
    the message names one), how many, and the first and last offsets in the
    dead-letter topic (<partition>@<offset>, per partition). With -o json:
    {"topic", "group", "waiting", "groups": [...]}, each group with an
    example message.
    """
    settings = ctx.settings
    with DeadLetterReader(settings) as reader:
        letters = list(reader.letters())
    groups = group(letters)
    if ctx.json_output:
        ctx.emit_json(
            {
                "topic": reader.topic,
                "group": redrive_group(settings),
                "waiting": len(letters),
                "groups": [g.as_dict() for g in groups],
            }
        )
        return
    if groups:
        rows = [g.as_dict() | {"table": g.table or "-", "rule": g.rule or "-"} for g in groups]
        click.echo(table(rows, ["reason", "table", "rule", "count", "first", "last"]))
    click.echo(f"{len(letters)} dead letter(s) waiting in {reader.topic}")


@command.command()
@click.argument("partition", type=int)
@click.argument("offset", type=int)
@pass_cli
def show(ctx: CliContext, partition: int, offset: int) -> None:
    """One dead letter in full: why, where from, its headers, and its record decoded.

    \b
    PARTITION and OFFSET are its position in the dead-letter topic (as 'dlq
    list' and 'events tail --dlq' print them). The source record is decoded
    as the transformer decodes it, where it can be (a record that is not a
    Debezium change shows its raw value only). Exit 1 when no record is there.
    """
    letter = _read_one(ctx.settings, partition, offset)
    shown = letter.describe()
    shown["decoded"] = _decoded(letter)
    if ctx.json_output:
        ctx.emit_json(shown)
        return
    click.echo(f"{letter.position}  {letter.reason}  dead-lettered at {shown['dead_lettered_at']}")
    for name in ("table", "rule", "column", "message", "hint", "redrives"):
        if shown[name] not in (None, "", 0):
            click.echo(f"  {name}: {shown[name]}")
    if shown["original"]:
        o = shown["original"]
        click.echo(f"  from: {o['topic']}[{o['partition']}]@{o['offset']} at {o['timestamp']}")
    click.echo("  headers:")
    for name, value in sorted(letter.headers.items()):
        click.echo(f"    {name}: {value}")
    click.echo(f"  key: {shown['key']}")
    decoded = shown["decoded"]
    if "error" in decoded:
        click.echo(f"  value (not decodable: {decoded['error']}): {shown['value']}")
    else:
        click.echo("  decoded: " + json.dumps(decoded, indent=2).replace("\n", "\n  "))


def _read_one(settings: Settings, partition: int, offset: int) -> DeadLetter:
    topic = settings.transformer.dead_letter_topic
    reader = DeadLetterReader(settings, start={partition: offset})
    with reader:
        assert reader.consumer is not None
        consumer = reader.consumer
        if partition not in reader.end:
            raise CdcflowError(f"{topic} has no partition {partition}")
        if not reader.begin[partition] <= offset < reader.end[partition]:
            raise CdcflowError(
                f"{topic}[{partition}] has no offset {offset} "
                f"(it holds {reader.begin[partition]} to {reader.end[partition] - 1})"
            )
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
        except KafkaException as exc:
            raise CdcflowError(f"cannot read {topic}[{partition}]@{offset}: {exc}") from exc
        for _ in range(30):
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            if msg.offset() == offset:
                return letter_of(msg)
            break
    raise CdcflowError(
        f"{topic}[{partition}]@{offset} is not a committed record",
        hint="an offset of an aborted transaction or a transaction marker holds no record",
    )


def _decoded(letter: DeadLetter) -> dict[str, Any]:
    """The source record as the transformer decodes it, JSON-ready; or why it cannot be."""
    topic, partition, offset = letter.original or (letter.topic, None, None)
    try:
        decoded = decode_record(
            letter.value, topic=topic, key=letter.key, partition=partition, offset=offset
        )
    except RecordError as exc:
        return {"error": exc.reason}
    if isinstance(decoded, Skip):
        return {"skip": str(decoded.reason), "detail": decoded.detail}
    shown: dict[str, Any] = _plain(
        {
            "op": decoded.op,
            "table": decoded.table,
            "key": dict(decoded.key),
            "before": dict(decoded.before) if decoded.before is not None else None,
            "after": dict(decoded.after) if decoded.after is not None else None,
            "source": decoded.source.model_dump(),
        }
    )
    return shown


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # Decimal, UUID, dates and times, intervals, UNCHANGED


@command.command()
@click.option(
    "--domain",
    default=None,
    help="The domain to map with (default: transformer.domain): the current, fixed one.",
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    help="Only dead letters of this stage (map), error class (UnknownTable) or both "
    "(map:UnknownTable). Repeatable.",
)
@click.option(
    "--table", "tables", multiple=True, help="Only dead letters of this schema.table. Repeatable."
)
@click.option(
    "--since",
    default=None,
    help="Only dead letters written at or after this time: ISO 8601 (UTC unless it says) "
    "or an age (90m, 2h, 1d).",
)
@click.option(
    "--dry-run", is_flag=True, help="Count what would happen; produce and commit nothing."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Dead letters per Kafka transaction.",
)
@pass_cli
def redrive(
    ctx: CliContext,
    domain: str | None,
    reasons: tuple[str, ...],
    tables: tuple[str, ...],
    since: str | None,
    dry_run: bool,
    batch_size: int,
) -> None:
    """Map the waiting dead letters again with the current domain, exactly once.

    \b
    Run it after fixing what dead-lettered them (a rule, the table's replica
    identity, a contract). Each dead letter's source record is decoded,
    mapped and serialized as the transformer would now, and:
    - what maps becomes its events, with the ids they would have had (derived
      from the source position) and the headers cdcflow.redriven (the reason
      it had been dead-lettered for) and cdcflow.redriven.from (the dead
      letter's position); they are appended after the aggregate's later
      events (docs/guarantees.md, "Redriven events");
    - what the domain now skips is counted and dropped;
    - what still fails is dead-lettered again with its new reason (header
      cdcflow.dlq.redrives counts the redrives it failed);
    - what --reason/--table/--since leave out is appended again unchanged.
    \b
    One Kafka transaction per batch holds its events, its dead letters and
    the redrive group's offsets: killed at any point and run again, no dead
    letter produces its events twice. Dead letters written after the start
    wait for the next redrive. Prints the balance
      dead-lettered = redriven + still dead + skipped + not selected
    (-o json: the same as an object). One redrive of a topic at a time: a
    second one takes over and the first exits 3.
    """
    settings = ctx.settings
    try:
        since_ms = parse_since(since) if since else None
    except ConfigError as exc:  # a wrong option value is a usage error (exit 2)
        raise click.BadParameter(f"{exc.message} ({exc.hint})", param_hint="--since") from exc
    selection = Selection(reasons=reasons, tables=tables, since_ms=since_ms)
    loaded = load_domain(domain or settings.transformer.domain)
    # Records without a schema are typed as `run` types them: with the deployed connectors'
    # value handling (the routing is `run`'s to refuse, not a redrive's).
    feeding = feeding_connectors(settings, domain or settings.transformer.domain)
    if feeding is not None:
        settings = reading_connectors(settings, feeding)
    identities = identity_catalog(settings)
    identities.prepare(loaded.rules.tables)
    serializer = EventSerializer(
        SchemaRegistryClient(settings.registry.client_config()),
        settings.transformer.schemas_dir,
        auto_register=settings.registry.auto_register,
    )
    reprocess = Reprocessor(
        loaded.rules,
        serializer,
        identities,
        dead_letter_topic=settings.transformer.dead_letter_topic,
        transformer=redrive_transactional_id(settings),
        decoder=decoder_options(settings),  # records without a schema typed as by `run`
    )

    def on_commit(batch: Balance, total: Balance) -> None:
        click.echo(
            f"transaction {total.transactions} committed: {batch.line()}; so far: {total.line()}",
            err=True,
        )

    job = Redrive(settings, reprocess, selection, batch_size=batch_size, on_commit=on_commit)
    if dry_run:
        balance = job.dry_run()
    else:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        balance = job.run(stop)
    if ctx.json_output:
        ctx.emit_json({"dry_run": dry_run, **balance.as_dict()})
        return
    click.echo(("dry run: " if dry_run else "") + balance.line())
    for reason, n in sorted(balance.still_dead.items()):
        click.echo(f"  still dead: {n} {reason}")
    for reason, n in sorted(balance.skipped.items()):
        click.echo(f"  skipped: {n} {reason}")
    for event_type, n in sorted(balance.events.items()):
        click.echo(f"  {'would produce' if dry_run else 'produced'}: {n} {event_type}")
