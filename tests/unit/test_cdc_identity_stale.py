"""An old row written before its table became REPLICA IDENTITY FULL.

The catalogue says how a table's old rows are written *now*. A delete still in
the backlog, or redriven from the dead-letter topic after the operator ran
``ALTER TABLE ... REPLICA IDENTITY FULL``, was written under the earlier
identity: its before image holds Debezium's fill-ins (null, ``0``, ``""``, the
schema default) for every column outside the key. cdcflow recognises that
shape from the record itself and trusts only the key, so a fill-in never
becomes an event value; a real FULL old row keeps every column.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.cdc import Change, ReplicaIdentity, decode_record
from pipeline.cdc.identity import key_only_shape
from pipeline.errors import ColumnWithheld
from pipeline.transformer.identities import IdentityCatalog
from tests.unit import debezium as dbz
from tests.unit.test_cdc_identity import ACCOUNT_COLUMNS

COLUMNS = [*ACCOUNT_COLUMNS, dbz.tstz("opened_at"), dbz.decimal("balance", 2)]
FILLED = {
    "id": 7,
    "customer_ref": 0,
    "owner": "",
    "active": False,
    "note": None,
    "opened_at": "1970-01-01T00:00:00Z",
    "balance": "AA==",
}
REAL = {**FILLED, "customer_ref": 4711, "owner": "ada", "active": True}


def _change(op: str, before: dict[str, Any], columns: list[dict[str, Any]] = COLUMNS) -> Change:
    after = {**before, "id": 8} if op == "u" else None
    key, value = dbz.record(
        op,
        "accounts",
        before=before,
        after=after,
        columns=columns,
        key_fields=[dbz.int64("id")],
        lsn=5000,
    )
    change = decode_record(value, key=key, topic=dbz.topic("accounts"))
    assert isinstance(change, Change)
    return change


def _full_catalogue() -> IdentityCatalog:
    def lookup(database: str, tables: Any) -> dict[str, ReplicaIdentity]:
        return {t: ReplicaIdentity.from_catalog("f") for t in tables}

    return IdentityCatalog(lookup, database="shop")


def test_an_old_row_of_fill_ins_has_the_key_only_shape() -> None:
    assert _change("d", FILLED).key_only_shape
    assert _change("u", FILLED).key_only_shape  # an UPDATE that changed the key


@pytest.mark.parametrize(
    ("column", "value"),
    [("customer_ref", 4711), ("owner", "ada"), ("active", True), ("note", "vip")],
)
def test_one_real_value_outside_the_key_is_enough_to_be_a_whole_row(
    column: str, value: Any
) -> None:
    assert not _change("d", {**FILLED, column: value}).key_only_shape


def test_a_declared_schema_default_counts_as_a_fill_in() -> None:
    columns = [*COLUMNS[:2], {**dbz.text("owner"), "default": "nobody"}, *COLUMNS[3:]]
    assert _change("d", {**FILLED, "owner": "nobody"}, columns).key_only_shape
    assert not _change("d", {**FILLED, "owner": "ada"}, columns).key_only_shape


def test_creates_and_rows_without_other_columns_are_never_key_only_shaped() -> None:
    assert not key_only_shape({"id": 1}, ["id"], None)
    assert not key_only_shape(None, ["id"], None)
    assert key_only_shape({"id": 1, "n": None}, ["id"], None)


def test_a_full_table_s_key_only_shaped_delete_trusts_the_key_only() -> None:
    restricted = _full_catalogue().restrict(_change("d", FILLED))
    assert dict(restricted.before or {}) == {"id": 7}
    assert restricted.withheld == {
        "customer_ref",
        "owner",
        "active",
        "note",
        "opened_at",
        "balance",
    }
    with pytest.raises(ColumnWithheld) as caught:
        restricted.old("customer_ref")
    assert "written under an earlier identity" in str(caught.value)
    assert "nothing to change if the table is REPLICA IDENTITY FULL now" in caught.value.hint


def test_a_full_table_s_real_old_row_is_kept_whole() -> None:
    restricted = _full_catalogue().restrict(_change("d", REAL))
    assert restricted.withheld == frozenset()
    assert restricted.old("customer_ref") == 4711
    assert restricted.old("owner") == "ada"
