"""One decision of 'the registry is unavailable', and the one Avro reader (no services)."""

from __future__ import annotations

import io
import json

import fastavro
import httpx2
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from pipeline.errors import ConfigError, RegistryError
from pipeline.serde.reader import AvroReader, UndecodableValue
from pipeline.serde.registry import (
    RegistryUnavailable,
    error_code,
    http_status,
    map_registry_errors,
)
from pipeline.serde.wire import header, split_header


@pytest.mark.parametrize(
    "exc",
    [
        SchemaRegistryError(503, 50301, "unavailable"),
        SchemaRegistryError(429, 42901, "slow down"),
        SchemaRegistryError(-1, -1, "unknown"),
        httpx2.ConnectError("[Errno 111] Connection refused"),
        TimeoutError("timed out"),
    ],
)
def test_no_answer_is_unavailable_and_a_registry_error(exc: Exception) -> None:
    with (
        pytest.raises(RegistryUnavailable, match=r"schema registry unavailable \(lookup in s\)"),
        map_registry_errors("lookup in s"),
    ):
        raise exc
    assert issubclass(RegistryUnavailable, RegistryError)


def test_the_url_names_the_registry_that_did_not_answer() -> None:
    with (
        pytest.raises(RegistryUnavailable, match="schema registry at http://r:1 did not answer"),
        map_registry_errors("versions of s", url="http://r:1"),
    ):
        raise httpx2.ConnectError("refused")


def test_a_refusal_carries_status_and_error_code() -> None:
    with pytest.raises(RegistryError) as caught, map_registry_errors("register in s"):
        raise SchemaRegistryError(409, 409, "incompatible")
    assert not isinstance(caught.value, RegistryUnavailable)
    assert str(caught.value) == "registry register in s: HTTP 409, error 409: incompatible"
    assert (http_status(caught.value), error_code(caught.value)) == (409, 409)


def test_an_unusable_answer_is_a_registry_error_and_cdcflow_errors_pass() -> None:
    with (
        pytest.raises(RegistryError, match="the answer is unusable: ValueError: bad json"),
        map_registry_errors("schema id 3"),
    ):
        raise ValueError("bad json")
    with pytest.raises(ConfigError), map_registry_errors("schema id 3"):
        raise ConfigError("a setting")


_SCHEMA = {
    "type": "record",
    "name": "Thing",
    "namespace": "test.events",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}


def _value(schema_id: int, record: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(_SCHEMA), record)
    return header(schema_id) + buf.getvalue()


def test_the_reader_asks_for_each_schema_once_and_decodes_with_it() -> None:
    asked: list[int] = []

    def lookup(schema_id: int) -> str:
        asked.append(schema_id)
        return json.dumps(_SCHEMA)

    reader = AvroReader(lookup)
    for n in range(3):
        writer, record = reader.read(_value(9, {"id": n, "name": f"n{n}"}))
        assert (writer.schema_id, writer.full_name, writer.type_name) == (
            9,
            "test.events.Thing",
            "Thing",
        )
        assert record == {"id": n, "name": f"n{n}"}
    assert asked == [9]
    assert list(reader.schemas()) == [9]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "shorter than the 5-byte"),
        (b"\x00\x00\x00", "shorter than the 5-byte"),
        (b"\x01\x00\x00\x00\x09\x02", "unknown magic byte 1"),
        (header(9) + b"\x02", "body does not decode with schema id 9"),
    ],
)
def test_what_is_not_framed_avro_is_undecodable(value: bytes, message: str) -> None:
    reader = AvroReader({9: json.dumps(_SCHEMA)}.__getitem__)
    with pytest.raises(UndecodableValue, match=message):
        reader.read(value)


def test_the_header_is_written_and_read_in_one_place() -> None:
    assert header(258) == b"\x00\x00\x00\x01\x02"
    assert split_header(header(258) + b"body") == 258
