"""``cdcflow events``: read domain events back, decoded through the registry."""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from typing import Any

import click
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.cli._context import CliContext, pass_cli
from pipeline.serde import EventDeserializer
from pipeline.serde.avro import readable
from pipeline.transformer import dlq as dead_letters
from pipeline.transformer.batch import EVENT_TYPE, where


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


@click.group(name="events")
def command() -> None:
    """Read domain events back from their topics."""


@command.command()
@click.argument("topics", nargs=-1)
@click.option(
    "--from-beginning", is_flag=True, help="Start at the earliest event instead of the end."
)
@click.option("-n", "--max", "limit", type=int, default=None, help="Stop after this many events.")
@click.option(
    "--timeout", type=float, default=None, help="Stop after this many seconds without events."
)
@click.option(
    "--dlq", is_flag=True, help="Read the dead-letter topic (raw values and the why-headers)."
)
@pass_cli
def tail(
    ctx: CliContext,
    topics: tuple[str, ...],
    from_beginning: bool,
    limit: int | None,
    timeout: float | None,
    dlq: bool,
) -> None:
    """Print domain events as they arrive, decoded through the schema registry.

    \b
    TOPICS default to every <domain>.<aggregate>.events topic (regex
    ^.*\\.events$). Reads with isolation.level=read_committed, so only events
    of committed transactions are shown. One line per event: partition,
    offset, key, event type, then the event as JSON (with -o json: one JSON
    object per line, for jq).
    """
    settings = ctx.settings
    subscribe = list(topics) or (
        [settings.transformer.dead_letter_topic] if dlq else ["^.*\\.events$"]
    )
    consumer = Consumer(
        settings.kafka.client_config("consumer")
        | {
            "group.id": f"cdcflow-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    deserialize = EventDeserializer(SchemaRegistryClient(settings.registry.client_config()))
    consumer.subscribe(subscribe)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    seen = 0
    last = time.monotonic()
    try:
        while limit is None or seen < limit:
            msg = consumer.poll(0.5)
            if msg is None:
                if timeout is not None and time.monotonic() - last > timeout:
                    break
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    click.echo(f"error: {err}", err=True)
                continue
            last = time.monotonic()
            seen += 1
            topic, partition, offset = where(msg)
            raw_headers: list[tuple[str, Any]] = list(msg.headers() or [])  # type: ignore[arg-type]
            headers = {k: _text(v) for k, v in raw_headers}
            key, value = msg.key(), msg.value()
            row: dict[str, Any] = {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": _text(key) if key else None,
            }
            if dlq:
                row["headers"] = headers
                row["value"] = _text(value) if value else None
            else:
                row["event"] = readable(deserialize(value or b"", topic))
                row["type"] = headers.get(EVENT_TYPE, "?")
            if ctx.json_output:
                click.echo(json.dumps(row))
            elif dlq:
                click.echo(
                    f"{row['topic']}[{row['partition']}]@{row['offset']} "
                    f"{headers.get(dead_letters.STAGE)} {headers.get(dead_letters.ERROR_CLASS)}: "
                    f"{headers.get(dead_letters.ERROR_MESSAGE)} (from {headers.get(dead_letters.ORIGINAL_TOPIC)}"
                    f"[{headers.get(dead_letters.ORIGINAL_PARTITION)}]@{headers.get(dead_letters.ORIGINAL_OFFSET)})"
                )
            else:
                payload = {k: v for k, v in row["event"].items() if k != "metadata"}
                meta = row["event"].get("metadata", {})
                click.echo(
                    f"{row['topic']}[{row['partition']}]@{row['offset']} key={row['key']} "
                    f"{row['type']} at {meta.get('occurred_at')}: {json.dumps(payload)}"
                )
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if not ctx.json_output:
        click.echo(f"{seen} event(s)", err=True)
