"""Reading .avsc files: error positions, default checks, names; levels and their config file."""

from __future__ import annotations

import json
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from pipeline.contracts import (
    CompatibilityConfig,
    Level,
    load_compatibility,
    parse_level,
    parse_schema,
    read_schema_file,
)
from pipeline.contracts.schemafile import full_names, same_schema
from pipeline.errors import ConfigError, SchemaContractError


def test_invalid_json_names_file_line_and_column() -> None:
    text = '{\n  "type": "record",\n  "name": "E"\n  "fields": []\n}\n'
    with pytest.raises(SchemaContractError, match=r"^E\.avsc:4:3: invalid JSON: Expecting ','"):
        parse_schema(text, "E.avsc")


def test_unknown_type_points_at_the_field_type() -> None:
    schema = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "ok", "type": "long"},
            {
                "name": "address",
                "type": {
                    "type": "record",
                    "name": "A",
                    "fields": [{"name": "zip", "type": "strin"}],
                },
            },
        ],
    }
    text = json.dumps(schema, indent=2)
    with pytest.raises(SchemaContractError) as info:
        parse_schema(text, "E.avsc")
    message = info.value.message
    lines = text.splitlines()
    line = next(i for i, text_line in enumerate(lines, 1) if '"strin"' in text_line)
    column = lines[line - 1].index('"strin"') + 1
    assert message.startswith(
        f"E.avsc:{line}:{column}: invalid Avro schema at $.fields[1].type.fields[0].type: "
    )
    assert "strin" in message


def test_field_problem_points_at_the_field() -> None:
    text = json.dumps(
        {"type": "record", "name": "E", "fields": [{"name": "a", "type": "long"}, {"type": "long"}]}
    )
    with pytest.raises(SchemaContractError, match=r"at \$\.fields\[1\]"):
        parse_schema(text, "E.avsc")


def test_duplicate_enum_default_points_at_enum() -> None:
    text = json.dumps(
        {
            "type": "record",
            "name": "E",
            "fields": [
                {
                    "name": "s",
                    "type": {"type": "enum", "name": "S", "symbols": ["A"], "default": "B"},
                }
            ],
        }
    )
    with pytest.raises(SchemaContractError, match=r"at \$\.fields\[0\]\.type: .*default"):
        parse_schema(text, "E.avsc")


def test_union_default_must_fit_first_branch() -> None:
    # Python's parser accepts it; Java's (consumers, the spec) does not.
    text = json.dumps(
        {
            "type": "record",
            "name": "E",
            "fields": [{"name": "v", "type": ["null", "string"], "default": "x"}],
        }
    )
    with pytest.raises(
        SchemaContractError,
        match=r"invalid default at \$\.fields\[0\]\.default: \"x\" is not a null",
    ):
        parse_schema(text, "E.avsc")


def test_int_default_out_of_range() -> None:
    text = json.dumps(
        {"type": "record", "name": "E", "fields": [{"name": "n", "type": "int", "default": 2**40}]}
    )
    with pytest.raises(SchemaContractError, match="invalid default"):
        parse_schema(text, "E.avsc")


def test_record_default_with_named_reference() -> None:
    point = {"type": "record", "name": "P", "fields": [{"name": "x", "type": "long"}]}
    schema = {
        "type": "record",
        "name": "E",
        "namespace": "n",
        "fields": [{"name": "a", "type": point}, {"name": "b", "type": "P", "default": {"x": 1}}],
    }
    parse_schema(json.dumps(schema), "E.avsc")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaContractError, match="cannot read"):
        read_schema_file(tmp_path / "missing.avsc")


def test_line_of_a_field(tmp_path: Path) -> None:
    path = tmp_path / "E.avsc"
    path.write_text(
        json.dumps(
            {"type": "record", "name": "E", "fields": [{"name": "a", "type": "long"}]}, indent=2
        )
    )
    parsed = read_schema_file(path)
    assert parsed.line_of(("fields", 0, "type")) == 7
    assert parsed.line_of(("fields", 5)) == 4  # the nearest existing parent: "fields"
    assert parsed.full_name == "E"


def test_relative_aliases_are_qualified_like_java_does() -> None:
    old = {"type": "record", "name": "Event", "namespace": "c", "fields": []}
    new = {
        "type": "record",
        "name": "Happening",
        "namespace": "c",
        "aliases": ["Event"],
        "fields": [],
    }
    checker = ReaderWriterCompatibilityChecker()
    raw = checker.get_compatibility(
        avro.schema.parse(json.dumps(new)), avro.schema.parse(json.dumps(old))
    )
    # Why cdcflow qualifies: the Python checker alone calls this incompatible; the
    # spec (and Java, and the registry) read "Event" as c.Event.
    assert raw.compatibility is SchemaCompatibilityType.incompatible
    qualified = full_names(new)
    assert qualified["aliases"] == ["c.Event"]
    fixed = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(qualified)), avro.schema.parse(json.dumps(old))
    )
    assert fixed.compatibility is SchemaCompatibilityType.compatible


def test_same_schema_ignores_how_names_are_written() -> None:
    inner = {"type": "record", "name": "P", "fields": [{"name": "x", "type": "long"}]}
    a = {
        "type": "record",
        "name": "E",
        "namespace": "n",
        "fields": [{"name": "p", "type": {**inner, "namespace": "n"}}],
    }
    b = {"type": "record", "name": "n.E", "fields": [{"name": "p", "type": inner}]}
    assert same_schema(a, b)
    c = {**b, "fields": [{"name": "p", "type": inner, "doc": "changed"}]}
    assert not same_schema(a, c)


# -- levels


def test_levels_directions() -> None:
    assert Level.FULL_TRANSITIVE.transitive and Level.FULL_TRANSITIVE.directions == (
        Level.BACKWARD.directions[0],
        Level.FORWARD.directions[0],
    )
    assert Level.NONE.directions == ()
    assert not Level.BACKWARD.transitive


def test_unknown_level_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_level("BACKWARDS", "compatibility.yaml: default")
    assert "unknown compatibility level 'BACKWARDS'" in info.value.message
    assert (
        "BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE"
        in info.value.message
    )
    assert parse_level("full", "x") is Level.FULL


def test_config_precedence(tmp_path: Path) -> None:
    path = tmp_path / "compatibility.yaml"
    path.write_text("default: backward\ndomains:\n  shop: FULL\nsubjects:\n  s1: NONE\n")
    config = load_compatibility(path)
    assert config.level_for("s1", "shop") is Level.NONE
    assert config.level_for("s2", "shop") is Level.FULL
    assert config.level_for("s2", "other") is Level.BACKWARD


def test_config_defaults_and_errors(tmp_path: Path) -> None:
    assert load_compatibility(tmp_path / "missing.yaml").default is Level.FULL_TRANSITIVE
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: FULL\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_compatibility(bad)
    bad.write_text("subjects:\n  s: SOMETIMES\n")
    with pytest.raises(
        ConfigError, match=r"subjects\.s: unknown compatibility level 'SOMETIMES'; allowed"
    ):
        load_compatibility(bad)


def test_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "compatibility.yaml"
    path.write_text(CompatibilityConfig(domains={"shop": Level.FULL}).to_yaml())
    assert load_compatibility(path).domains == {"shop": Level.FULL}
    assert path.read_text().startswith("# Compatibility level")
