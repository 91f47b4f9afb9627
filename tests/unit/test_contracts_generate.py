"""Avro schemas generated from pydantic event models (test-only models, no services)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, ClassVar

import fastavro
import pytest
from pydantic import BaseModel, Field

from pipeline.contracts import SHARED_NAMESPACE, parse_schema, render, schema_for
from pipeline.errors import SchemaContractError
from pipeline.events import DomainEvent
from pipeline.events.naming import event_domain, event_subject, event_topic, subject_name
from tests.unit.contract_models import WidgetMade, WidgetScrapped


def fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in schema["fields"]}


def test_record_names_namespace_and_doc() -> None:
    schema = schema_for(WidgetMade)
    assert (schema["type"], schema["name"], schema["namespace"]) == (
        "record",
        "WidgetMade",
        "testshop.events",
    )
    assert schema["doc"] == "A widget was made.\n\nWith a second paragraph."
    assert "doc" not in schema_for(WidgetScrapped)  # not DomainEvent's docstring


def test_metadata_first_shared_required_record() -> None:
    schema = schema_for(WidgetMade)
    metadata = schema["fields"][0]
    assert metadata["name"] == "metadata"
    assert "default" not in metadata  # always stamped before an event is produced
    record = metadata["type"]
    assert (record["name"], record["namespace"]) == ("EventMetadata", SHARED_NAMESPACE)
    source = fields(record)["source"]["type"]
    assert (source["name"], source["namespace"]) == ("SourcePosition", SHARED_NAMESPACE)
    # the shared part is the same in every event schema
    assert schema_for(WidgetScrapped)["fields"][0] == metadata


@pytest.mark.parametrize(
    ("name", "avro_type"),
    [
        ("widget_id", {"type": "string", "logicalType": "uuid"}),
        ("price", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 3}),
        ("made_at", {"type": "long", "logicalType": "timestamp-micros"}),
        ("made_on", {"type": "int", "logicalType": "date"}),
        ("opens_at", {"type": "long", "logicalType": "time-micros"}),
        ("size", "long"),
        ("weight", "double"),
        ("fragile", "boolean"),
        ("label", "string"),
        ("blob", "bytes"),
        ("tags", {"type": "array", "items": "string"}),
        ("counts", {"type": "map", "values": "long"}),
    ],
)
def test_types(name: str, avro_type: Any) -> None:
    assert fields(schema_for(WidgetMade))[name]["type"] == avro_type


def test_optional_is_null_union_with_null_default() -> None:
    discount = fields(schema_for(WidgetMade))["discount"]
    assert discount["type"][0] == "null"
    assert discount["type"][1]["logicalType"] == "decimal"
    assert discount["default"] is None


def test_defaults_and_docs_and_aliases() -> None:
    f = fields(schema_for(WidgetMade))
    assert f["fragile"]["default"] is False
    assert f["label"]["default"] == "none"
    assert f["tags"]["default"] == []
    assert f["counts"]["default"] == {}
    assert f["price"]["doc"] == "what it costs"
    assert "doc" not in f["made_at"]
    assert f["note"]["aliases"] == ["comment"]
    assert "default" not in f["size"]


def test_enums_from_enum_classes_and_literals() -> None:
    f = fields(schema_for(WidgetMade))
    colour = f["colour"]
    assert colour["type"]["symbols"] == ["red", "green", "other"]
    assert (
        colour["type"]["default"] == "other"
    )  # __avro_default__: readers of old schemas survive new symbols
    assert colour["default"] == "red"
    kind = f["kind"]["type"]
    assert (kind["name"], kind["symbols"], kind["default"]) == (
        "WidgetMadeKind",
        ["small", "large"],
        "small",
    )


def test_nested_model_defined_once_then_referenced_by_name() -> None:
    f = fields(schema_for(WidgetMade))
    assert f["origin"]["type"]["name"] == "Point"
    assert f["origin"]["type"]["doc"] == "A place."
    assert f["corners"]["type"] == {"type": "array", "items": "testshop.events.Point"}


def test_union_of_types() -> None:
    assert fields(schema_for(WidgetScrapped))["reason"]["type"] == ["string", "long"]


def test_generated_schemas_are_valid_for_avro_and_fastavro() -> None:
    for event in (WidgetMade, WidgetScrapped):
        text = render(schema_for(event))
        parse_schema(text, event.__name__)
        fastavro.parse_schema(json.loads(text))


def test_render_is_stable_and_ordered() -> None:
    text = render(schema_for(WidgetMade))
    assert text == render(json.loads(text))
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["type", "name", "namespace", "doc", "fields"]
    assert list(fields(json.loads(text))["discount"]) == ["name", "type", "doc", "default"]


class _Bad(DomainEvent):
    __namespace__: ClassVar[str] = "bad"
    __aggregate__: ClassVar[str] = "thing"


def test_decimal_without_precision_is_refused() -> None:
    class Priced(_Bad):
        price: Decimal

    with pytest.raises(
        SchemaContractError, match=r"Priced\.price: a Decimal needs max_digits and decimal_places"
    ):
        schema_for(Priced)


def test_map_with_non_string_keys_is_refused() -> None:
    class Keyed(_Bad):
        counts: dict[int, str]

    with pytest.raises(SchemaContractError, match=r"Keyed\.counts: Avro maps have string keys"):
        schema_for(Keyed)


def test_invalid_enum_symbol_is_refused() -> None:
    from typing import Literal

    class Dashed(_Bad):
        state: Literal["in-progress", "done"]

    with pytest.raises(SchemaContractError, match="not a valid Avro symbol"):
        schema_for(Dashed)


def test_two_types_with_one_name_are_refused() -> None:
    class Point(BaseModel):
        z: int

    from tests.unit.contract_models import Point as Other

    class Clash(_Bad):
        a: Point
        b: Other

    Clash.__namespace__ = "testshop.events"
    with pytest.raises(SchemaContractError, match="both named"):
        schema_for(Clash)


def test_defaults_of_logical_types() -> None:
    from datetime import UTC, datetime

    class Defaults(_Bad):
        amount: Decimal = Field(Decimal("1.50"), max_digits=5, decimal_places=2)
        at: datetime = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)

    f = fields(schema_for(Defaults))
    assert f["amount"]["default"] == "\x00\x96"  # 150 as big-endian two's complement bytes
    assert f["at"]["default"] == 1_000_000


def test_optional_with_non_null_default_puts_its_branch_first() -> None:
    class Counted(_Bad):
        n: int | None = 5

    n = fields(schema_for(Counted))["n"]
    assert n["type"] == ["long", "null"]
    assert n["default"] == 5


def test_subject_naming() -> None:
    assert subject_name("shop.order.events", "shop.events.OrderPlaced") == (
        "shop.order.events-shop.events.OrderPlaced"
    )
    assert event_domain(WidgetMade) == "testshop"
    assert event_topic(WidgetMade) == "testshop.widget.events"
    assert event_subject(WidgetMade) == "testshop.widget.events-testshop.events.WidgetMade"
    with pytest.raises(ValueError):
        subject_name("", "x")


def test_shop_domain_subjects() -> None:
    from pipeline.domains.shop.events import OrderPlaced

    assert event_domain(OrderPlaced) == "shop"
    assert event_subject(OrderPlaced) == "shop.order.events-shop.events.OrderPlaced"
