"""Connector files and overlays: parsing, merging, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.connect import load_connectors, parse_connector_file
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

BASE = """\
# a comment
name: orders-source
config:
  connector.class: org.example.FakeSourceConnector
  tasks.max: 1
  database.password: ${env:ORDERS_DB_PASSWORD}
  mode: 0755
  flag: on
  table.include.list:
    - public.orders
    - public.order_lines
  removable: x
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_yaml_values_are_taken_exactly_as_written(tmp_path: Path) -> None:
    spec = parse_connector_file(write(tmp_path / "orders.yaml", BASE))
    assert spec.name == "orders-source"
    # YAML 1.1 would make 493 and True of these; Connect must get the characters.
    assert spec.config["mode"] == "0755"
    assert spec.config["flag"] == "on"
    assert spec.config["tasks.max"] == "1"
    assert spec.config["table.include.list"] == "public.orders,public.order_lines"
    assert spec.config["database.password"] == "${env:ORDERS_DB_PASSWORD}"
    assert spec.where("tasks.max") == f"{tmp_path / 'orders.yaml'}:5"


def test_json_file_is_read_with_key_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "orders.json",
        '{\n  "name": "orders-source",\n  "config": {\n    "connector.class": "org.example.X",\n'
        '    "tasks.max": 1,\n    "enabled": true\n  }\n}\n',
    )
    spec = parse_connector_file(path)
    assert spec.config == {"connector.class": "org.example.X", "tasks.max": "1", "enabled": "true"}
    assert spec.where("tasks.max") == f"{path}:5"


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "name: x\nconfig:\n  a: 1\n   b: [2\n")
    with pytest.raises(ConfigError) as err:
        parse_connector_file(path)
    assert f"{path}:4:" in err.value.message
    assert "not valid YAML" in err.value.message


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '{\n  "name": "x",\n  "config": {"a": 1,}\n}\n')
    with pytest.raises(ConfigError) as err:
        parse_connector_file(path)
    assert f"{path}:3:" in err.value.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "name: x\nconfig:\n  connector.class: C\n  database:\n    port: 1\n",
            4,
            ["'database'", "nested"],
        ),
        ("name: x\nconfig:\n  connector.class: C\n  tasks.max:\n", 4, ["'tasks.max'", "no value"]),
        ("name: x\nconfig:\n  connector.class: C\n  a: 1\n  a: 2\n", 5, ["'a'", "twice", "line 4"]),
        ("name: x\nconfg:\n  a: 1\n", 2, ["unknown key 'confg'"]),
        ("name: x\nconfig:\n  connector.class: C\n  l:\n    - {a: 1}\n", 5, ["'l'", "list"]),
    ],
)
def test_bad_keys_are_named_with_their_line(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as err:
        parse_connector_file(path)
    assert f"{path}:{line}:" in err.value.message
    for word in words:
        assert word in err.value.message


def test_missing_name_or_class(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'name' is missing"):
        parse_connector_file(write(tmp_path / "a.yaml", "config:\n  a: 1\n"))
    with pytest.raises(ConfigError, match=r"'connector\.class' is missing"):
        parse_connector_file(write(tmp_path / "b.yaml", "name: b\nconfig:\n  a: 1\n"))


def test_config_name_must_match(tmp_path: Path) -> None:
    ok = parse_connector_file(
        write(tmp_path / "a.yaml", "name: a\nconfig:\n  connector.class: C\n  name: a\n")
    )
    assert "name" not in ok.config  # the server adds it
    with pytest.raises(ConfigError, match="differs"):
        parse_connector_file(
            write(tmp_path / "b.yaml", "name: b\nconfig:\n  connector.class: C\n  name: c\n")
        )


def test_overlay_replaces_removes_and_renames(tmp_path: Path) -> None:
    write(tmp_path / "orders.yaml", BASE)
    overlay = write(
        tmp_path / "overlays" / "prod" / "orders.yaml",
        "name: orders-prod\nconfig:\n  tasks.max: 2\n  removable: null\n  extra: y\n",
    )
    (spec,) = load_connectors(tmp_path, "prod")
    assert spec.name == "orders-prod"
    assert spec.config["tasks.max"] == "2"
    assert spec.config["extra"] == "y"
    assert "removable" not in spec.config
    assert spec.config["mode"] == "0755"  # untouched base key
    assert spec.overlay == overlay
    assert spec.where("tasks.max") == f"{overlay}:3"
    (base,) = load_connectors(tmp_path)
    assert base.name == "orders-source" and base.config["tasks.max"] == "1"


def test_overlay_errors(tmp_path: Path) -> None:
    write(tmp_path / "orders.yaml", BASE)
    with pytest.raises(ConfigError, match="no overlay directory"):
        load_connectors(tmp_path, "prdo")
    write(tmp_path / "overlays" / "a" / "ordres.yaml", "config:\n  x: 1\n")
    with pytest.raises(ConfigError, match="has no base file"):
        load_connectors(tmp_path, "a")
    write(tmp_path / "overlays" / "b" / "orders.yaml", "config:\n  nothere: null\n")
    with pytest.raises(ConfigError, match="removes 'nothere'") as err:
        load_connectors(tmp_path, "b")
    assert "orders.yaml:2" in err.value.message


def test_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_connectors(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no connector files"):
        load_connectors(tmp_path)
    write(tmp_path / "a.yaml", "name: same\nconfig:\n  connector.class: C\n")
    write(tmp_path / "b.json", '{"name": "same", "config": {"connector.class": "C"}}')
    with pytest.raises(ConfigError, match="declared twice"):
        load_connectors(tmp_path)


def test_the_shop_connector_file() -> None:
    (spec,) = load_connectors(REPO / "connectors")
    c = spec.config
    assert spec.name == "shop-postgres"
    assert c["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    expected = {
        "plugin.name": "pgoutput",
        "publication.autocreate.mode": "filtered",
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        "interval.handling.mode": "string",
        "hstore.handling.mode": "json",
        "binary.handling.mode": "bytes",
        "tombstones.on.delete": "false",
        "topic.prefix": "shop",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
    }
    assert {k: c[k] for k in expected} == expected
    assert c["slot.name"] and c["slot.name"] != "debezium"
    tables = c["table.include.list"].split(",")
    for table in (
        "customers",
        "products",
        "orders",
        "order_lines",
        "payments",
        "cdcflow_heartbeat",
    ):
        assert f"public.{table}" in tables
    assert "cdcflow_heartbeat" in c["heartbeat.action.query"]
    assert int(c["heartbeat.interval.ms"]) > 0
    assert c["database.password"].startswith("${env:")


def test_every_overlay_in_the_repository_applies() -> None:
    overlays = REPO / "connectors" / "overlays"
    for env in sorted(p.name for p in overlays.iterdir() if p.is_dir()):
        for spec in load_connectors(REPO / "connectors", env):
            assert spec.config["database.password"].startswith("${")
