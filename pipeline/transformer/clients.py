"""The transformer's Kafka clients: how they are made, their configs, the topics they need.

A :class:`Clients` holds one factory per client, each taking the client's
config: the real clients by default, functions that return fakes in a test
(no monkeypatching of the daemon module).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.errors import CdcflowError
from pipeline.settings import Settings

__all__ = ["Clients", "consumer_config", "ensure_topics", "init_transactions", "producer_config"]

log = logging.getLogger("cdcflow.transformer")


@dataclass(frozen=True)
class Clients:
    """The factories a transformer makes its Kafka clients with, each from its config."""

    consumer: Callable[[dict[str, Any]], Consumer] = Consumer
    producer: Callable[[dict[str, Any]], Producer] = Producer
    admin: Callable[[dict[str, Any]], AdminClient] = AdminClient


def consumer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The transformer's consumer: a static, read-committed group member that commits nothing itself."""
    cfg = settings.transformer
    conf = settings.kafka.client_config("consumer")
    conf.update(
        {
            "group.id": cfg.group_id,
            # Static membership: a restarted instance takes its partitions back
            # at once instead of waiting out the dead member's session.
            "group.instance.id": transactional_id,
            "session.timeout.ms": 15000,
            # New CDC topics (a table added to the connector) join the pattern
            # subscription within 10 s, not librdkafka's default 5 minutes.
            "topic.metadata.refresh.interval.ms": 10000,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # Low latency when quiet: the broker answers a fetch within 10 ms.
            "fetch.wait.max.ms": 10,
        }
    )
    return conf


def producer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The transformer's transactional, idempotent producer."""
    conf: dict[str, Any] = {
        "linger.ms": 5,
        "compression.type": "lz4",
        # The Java clients' partitioner: the same key lands on the same
        # partition whichever client produces it.
        "partitioner": "murmur2_random",
        "transaction.timeout.ms": 60000,
    }
    conf.update(settings.kafka.client_config("producer"))
    conf["transactional.id"] = transactional_id
    conf["enable.idempotence"] = True
    return conf


def ensure_topics(admin: AdminClient, settings: Settings, topics: Iterable[str]) -> None:
    """Create ``topics`` (event and dead-letter topics) where missing.

    Raises:
        CdcflowError: a topic cannot be created.
    """
    kafka, partitions = settings.kafka, settings.transformer.event_topic_partitions
    config = {"min.insync.replicas": str(kafka.min_insync_replicas)}
    existing = set(admin.list_topics(timeout=30).topics)
    new = [
        NewTopic(
            t, num_partitions=partitions, replication_factor=kafka.replication_factor, config=config
        )
        for t in sorted(set(topics))
        if t not in existing
    ]
    if not new:
        return
    for topic, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(60)
            log.info("created topic %s (%d partitions)", topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise CdcflowError(f"cannot create topic {topic}: {exc}") from exc


def init_transactions(producer: Producer) -> Producer:
    """``producer``, its transactions initialised: older producers with its transactional id
    are fenced, and what they left open is aborted.

    Raises:
        CdcflowError: transactions cannot be initialised.
    """
    try:
        producer.init_transactions(60)
    except KafkaException as exc:
        raise CdcflowError(
            f"cannot initialise Kafka transactions: {exc}",
            hint="check the broker's transaction.state.log.* settings",
        ) from exc
    return producer
