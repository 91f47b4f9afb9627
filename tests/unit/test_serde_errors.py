"""The serializer tells 'the registry did not answer' from 'the event does not fit'."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import httpx2  # the registry client's HTTP stack (declared in pyproject.toml): no silent skip
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipeline.errors import SchemaContractError, SerializationError
from pipeline.events import DomainEvent
from pipeline.serde import EventSerializer, RegistryUnavailable
from pipeline.serde.registry import is_unavailable


class Thing(DomainEvent):
    __aggregate__ = "thing"
    __aggregate_id__ = "thing_id"
    __namespace__ = "test.events"
    thing_id: int


class FakeRegistry:
    """Stands in for the registry client: answers lookups from a function."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def lookup_schema(self, *args: object, **kwargs: object) -> object:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def register_schema(self, *args: object, **kwargs: object) -> object:
        return self.lookup_schema()

    def __getattr__(self, name: str) -> object:  # anything else the serializer asks for
        return self.lookup_schema


def _contract(tmp_path: Path) -> Path:
    d = tmp_path / "test.events"
    d.mkdir()
    (d / "Thing.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Thing",
                "namespace": "test.events",
                "fields": [{"name": "thing_id", "type": "int"}],
            }
        )
    )
    return tmp_path


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx2.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        ConnectionRefusedError(111, "refused"),
        SchemaRegistryError(503, 50301, "unavailable"),
        SchemaRegistryError(-1, -1, "unknown"),
    ],
)
def test_outages_are_unavailable_not_bad_events(exc: Exception) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc", [SchemaRegistryError(409, 409, "incompatible"), ValueError("bad datum")]
)
def test_refusals_are_not_outages(exc: Exception) -> None:
    assert not is_unavailable(exc)


def test_refused_connection_raises_registry_unavailable(tmp_path: Path) -> None:
    ser = EventSerializer(FakeRegistry(httpx.ConnectError("refused")), _contract(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailable):
        ser.serialize(Thing(thing_id=1), "test.thing.events")


def test_unregistered_schema_is_a_contract_error(tmp_path: Path) -> None:
    ser = EventSerializer(
        FakeRegistry(SchemaRegistryError(404, 40403, "Schema not found")), _contract(tmp_path)
    )  # type: ignore[arg-type]
    with pytest.raises(SchemaContractError, match="not registered"):
        ser.serialize(Thing(thing_id=1), "test.thing.events")


def test_missing_contract_file_names_the_command(tmp_path: Path) -> None:
    ser = EventSerializer(FakeRegistry(None), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(SchemaContractError, match="cdcflow schemas generate"):
        ser.serialize(Thing(thing_id=1), "test.thing.events")


def test_a_value_outside_the_schema_is_a_serialization_error(tmp_path: Path) -> None:
    class Registered:
        schema_id = 7
        version = 1
        guid = None

    class Drifted(DomainEvent):  # the model says str where the contract says int
        __aggregate__ = "thing"
        __aggregate_id__ = "thing_id"
        __namespace__ = "test.events"
        thing_id: str

    Drifted.__name__ = "Thing"
    ser = EventSerializer(FakeRegistry(Registered()), _contract(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="does not fit its schema"):
        ser.serialize(Drifted(thing_id="not a number"), "test.thing.events")


def test_the_registry_clients_own_error_for_a_closed_port_is_unavailable(tmp_path: Path) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    closed = SchemaRegistryClient({"url": "http://127.0.0.1:9"})  # discard port: nothing listens
    ser = EventSerializer(closed, _contract(tmp_path))
    with pytest.raises(RegistryUnavailable):
        ser.serialize(Thing(thing_id=1), "test.thing.events")
