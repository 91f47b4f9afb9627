"""``cdcflow init``'s draft without a database: column types, notes, files, contracts, preflight.

The tables are built by hand as the catalogue reader returns them; the draft is
written into a temporary directory, imported, its contracts generated and its
connector checked against it, exactly as ``init`` does after reading a database.
"""

from __future__ import annotations

import importlib
import json
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from pipeline.connect.files import parse_connector_file
from pipeline.errors import CdcflowError, ConfigError
from pipeline.onboard import Column, Table, Target, draft_project, field_type, plan_domain
from pipeline.onboard.project import ProjectExists
from pipeline.settings import load_settings
from tests.unit.changes import make_change


def col(name: str, type_name: str, sql: str | None = None, **kw: object) -> Column:
    kw.setdefault("nullable", True)
    kw.setdefault("type_kind", "b")
    return Column(name, type_name, sql or type_name, **kw)  # type: ignore[arg-type]


ORDERS = Table(
    "public",
    "orders",
    (
        col("id", "int8", "bigint", nullable=False),
        col("total", "numeric", "numeric(12,2)", nullable=False, precision=12, scale=2),
        col("raw", "numeric"),
        col("placed_at", "timestamptz", "timestamp with time zone", nullable=False),
        col("status", "order_status", type_kind="e", nullable=False, labels=("new", "paid")),
        col("tags", "_text", "text[]", element="text"),
        col("doc", "jsonb"),
        col("ref", "uuid"),
        col("class", "text"),
        col("where", "geometry"),
    ),
    ("id",),
    "d",
)
LINES = Table(
    "public",
    "order_lines",
    (
        col("order_id", "int8", "bigint", nullable=False),
        col("line_no", "int4", "integer", nullable=False),
        col("qty", "int4", "integer", nullable=False),
    ),
    ("order_id", "line_no"),
    "d",
    references=((("order_id",), "public.orders"),),
)
LOG = Table("public", "audit", (col("msg", "text"),), (), "d")


@pytest.mark.parametrize(
    ("column", "annotation", "convert"),
    [
        (col("a", "int2"), "int", None),
        (col("a", "int8"), "int", None),
        (col("a", "numeric", precision=10, scale=2), "Decimal", None),
        (col("a", "numeric"), "str", "decimal_text"),
        (col("a", "money"), "Decimal", None),
        (col("a", "float8"), "float", None),
        (col("a", "bool"), "bool", None),
        (col("a", "varchar"), "str", None),
        (col("a", "uuid"), "UUID", None),
        (col("a", "date"), "date", None),
        (col("a", "timetz"), "time", None),
        (col("a", "timestamptz"), "datetime", None),
        (col("a", "interval"), "str", "interval"),
        (col("a", "json"), "str", "json"),
        (col("a", "jsonb"), "str", "json"),
        (col("a", "bytea"), "bytes", None),
        (col("a", "inet"), "str", None),
        (col("a", "_int4", element="int4"), "list[int | None]", None),
        (col("a", "_uuid", element="uuid"), "list[UUID | None]", None),
        (col("a", "mood", type_kind="e", labels=("x",)), "Mood", None),
    ],
)
def test_column_types_map_to_field_types(column: Column, annotation: str, convert: str) -> None:
    ftype = field_type(column, "Mood")
    assert ftype is not None
    assert (ftype.annotation, ftype.convert) == (annotation, convert)


def test_numeric_keeps_precision_and_scale_and_money_is_19_2() -> None:
    numeric = field_type(col("a", "numeric", precision=12, scale=4), "")
    money = field_type(col("a", "money"), "")
    assert numeric is not None and numeric.decimal == (12, 4)
    assert money is not None and money.decimal == (19, 2)


@pytest.mark.parametrize(
    "column",
    [col("a", "geometry"), col("a", "tsvector"), col("a", "_jsonb", element="jsonb")],
)
def test_types_not_carried_have_no_field_type(column: Column) -> None:
    assert field_type(column, "") is None


def test_the_plan_names_what_it_left_out_and_what_to_refine() -> None:
    plan = plan_domain("shop", [ORDERS, LINES, LOG])
    assert [e.entity for e in plan.entities] == ["Order", "OrderLine"]
    assert [e.aggregate for e in plan.entities] == ["order", "order_line"]
    kinds = {(n.kind, n.subject) for n in plan.notes}
    assert kinds == {
        ("no-primary-key", "public.audit"),
        ("type-not-carried", "public.orders.where"),
        ("composite-key", "public.order_lines"),
        ("aggregate-spans-tables", "public.order_lines"),
        ("replica-identity", "public.orders"),
    }
    order = plan.entities[0]
    created, updated, deleted = order.events
    assert [f.name for f in created.fields] == [
        "id",
        "total",
        "raw",
        "placed_at",
        "status",
        "tags",
        "doc",
        "ref",
        "class_",
    ]
    assert [f.name for f in deleted.fields] == ["id"] and deleted.image == "old"
    assert (created.ops, updated.ops, deleted.ops) == ("cr", "u", "d")
    assert plan.enums == {"OrderStatus": ("new", "paid")}


def test_a_plan_without_any_keyed_table_is_refused() -> None:
    with pytest.raises(ValueError, match=r"public\.audit has no primary key"):
        plan_domain("shop", [LOG])


def _target(package: str) -> Target:
    return Target(
        package=package,
        host="db.example.com",
        port=5432,
        database="sales",
        user="app",
        password_file=None,
        connector_user="debezium",
        connector_password="${env:DBZ_PASSWORD}",
        schemas=("public",),
    )


def _forget(package: str) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def test_the_draft_imports_generates_contracts_and_maps_changes(tmp_path: Path) -> None:
    package = f"draft_{secrets.token_hex(4)}"
    result = draft_project([ORDERS, LINES, LOG], _target(package), tmp_path)
    assert result.written
    assert f"schemas/{package}.events/OrderCreated.avsc" in result.files
    assert [f for f in result.findings if f.level == "fail"] == []
    # The contract carries the column's precision and scale, the enum and optionals.
    avsc = json.loads((tmp_path / f"schemas/{package}.events/OrderCreated.avsc").read_text())
    fields = {f["name"]: f["type"] for f in avsc["fields"]}
    assert fields["total"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 12,
        "scale": 2,
    }
    assert fields["status"]["symbols"] == ["new", "paid"]
    assert fields["raw"] == ["null", "string"]

    # The settings file loads, the connector file parses, with nothing secret in them.
    settings = load_settings(tmp_path / "cdcflow.toml")
    assert settings.transformer.domain == package
    assert settings.transformer.topics == rf"^{package}\.public\..*"
    assert settings.source.host == "db.example.com" and settings.source.password is None
    spec = parse_connector_file(
        tmp_path / "connectors" / f"{package.replace('_', '-')}-postgres.yaml"
    )
    assert spec.config["database.password"] == "${env:DBZ_PASSWORD}"
    assert spec.config["table.include.list"] == "public.orders,public.order_lines"
    assert spec.config["slot.name"] == f"cdcflow_{package}"
    assert spec.config["decimal.handling.mode"] == "precise"
    assert spec.domain == package and spec.routing == "derive"
    rules_yaml = yaml.safe_load((tmp_path / package / "rules.yaml").read_text())
    assert {r["event"] for r in rules_yaml["rules"]} == {
        "OrderDeleted",
        "OrderLineCreated",
        "OrderLineUpdated",
        "OrderLineDeleted",
    }

    # The drafted rules turn a change into the event with the row's values.
    sys.path.insert(0, str(tmp_path))
    try:
        mappings = importlib.import_module(f"{package}.mappings")
        change = make_change(
            "c",
            "public.orders",
            after={
                "id": 7,
                "total": Decimal("12.30"),
                "raw": Decimal("1.5"),
                "placed_at": datetime(2026, 1, 2, tzinfo=UTC),
                "status": "paid",
                "tags": ["a", None],
                "doc": {"n": Decimal("1.50"), "s": "x"},
                "ref": None,
                "class": "gold",
            },
        )
        (rule,) = [r for r in mappings.rules if r.table == "public.orders" and "c" in r.ops]
        event = rule.fn(change)
        assert event.model_dump(exclude={"metadata"}) == {
            "id": 7,
            "total": Decimal("12.30"),
            "raw": "1.5",
            "placed_at": datetime(2026, 1, 2, tzinfo=UTC),
            "status": "paid",
            "tags": ["a", None],
            "doc": '{"n":1.50,"s":"x"}',
            "ref": None,
            "class_": "gold",
        }
    finally:
        sys.path.remove(str(tmp_path))
        _forget(package)


def test_the_draft_refuses_to_overwrite_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    package = f"draft_{secrets.token_hex(4)}"
    dry = draft_project([ORDERS], _target(package), tmp_path / "p", dry_run=True)
    assert not dry.written and not (tmp_path / "p").exists()
    draft_project([ORDERS], _target(package), tmp_path / "p")
    with pytest.raises(ProjectExists, match="already holds files") as caught:
        draft_project([ORDERS], _target(package), tmp_path / "p")
    assert isinstance(caught.value, CdcflowError) and caught.value.exit_code == 1
    again = draft_project([ORDERS], _target(package), tmp_path / "p", force=True)
    assert "cdcflow.toml" in again.overwritten


def test_a_name_an_installed_module_answers_to_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'json' is taken by an importable module"):
        draft_project([ORDERS], _target("json"), tmp_path / "p")
    assert not (tmp_path / "p").exists()


RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed")
def test_the_drafted_python_is_formatted_and_lint_clean(tmp_path: Path) -> None:
    package = f"draft_{secrets.token_hex(4)}"
    draft_project([ORDERS, LINES, LOG], _target(package), tmp_path)
    common = ["--isolated", "--line-length", "100"]
    fmt = subprocess.run(
        [str(RUFF), "format", "--check", "--diff", *common, package],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = subprocess.run(
        [str(RUFF), "check", *common, "--select", "E,F,W,I,UP", package],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
