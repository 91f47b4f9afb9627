"""The database's own history of changes, and the domain events it must yield.

An audit trigger on each shop table writes every row change (with its
transaction) into ``cdcflow_test_audit`` — a table Debezium does not capture.
:func:`expected_events` turns that history into the events the shop's rules
promise: per aggregate, in the order the changes were made, each with its type,
its source table and transaction, and every payload field written out from the
audited row by hand here (none of cdcflow's mapping code is used). The fault
tests compare what the pipeline produced with it, event by event:

- an event matches an expected one when type, table, transaction and every
  payload field are equal; a wrong value is one event missing and one
  unexpected;
- an event id seen twice is a duplicate; the same event under a new id is
  unexpected;
- the matched events of an aggregate must come in the order of the changes,
  and their source positions (commit LSN, LSN) must never go back;
- events marked as snapshot reads and events without an LSN are counted
  (none may appear: a re-snapshot would repeat history under new ids).

One field value is not in the row: a business time the application left NULL
falls back to the commit time, which the audit does not know; such a field is
compared with :data:`ANY`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from tests.support.db import retry_on_deadlock

__all__ = [
    "ANY",
    "Expected",
    "Found",
    "History",
    "Verdict",
    "compare",
    "expected_events",
    "found_event",
    "install_audit",
]

AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS cdcflow_test_audit (
  seq     bigserial PRIMARY KEY,
  txid    bigint NOT NULL DEFAULT txid_current(),
  tbl     text   NOT NULL,
  op      text   NOT NULL,
  old_row jsonb,
  new_row jsonb
);
CREATE OR REPLACE FUNCTION cdcflow_test_audit_fn() RETURNS trigger AS $$
BEGIN
  INSERT INTO cdcflow_test_audit (tbl, op, old_row, new_row)
  VALUES (TG_TABLE_NAME, TG_OP,
          CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
          CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
  RETURN NULL;
END $$ LANGUAGE plpgsql;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['customers', 'products', 'orders', 'order_lines', 'payments'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS cdcflow_test_audit ON %I', t);
    EXECUTE format('CREATE TRIGGER cdcflow_test_audit AFTER INSERT OR UPDATE OR DELETE ON %I'
                   ' FOR EACH ROW EXECUTE FUNCTION cdcflow_test_audit_fn()', t);
  END LOOP;
END $$;
"""


def install_audit(conn: psycopg.Connection[Any]) -> int:
    """Install the audit triggers; return the last audit sequence number so far."""
    retry_on_deadlock(lambda: conn.execute(AUDIT_SQL))
    return audit_seq(conn)


def audit_seq(conn: psycopg.Connection[Any]) -> int:
    """The last audit sequence number: how many row changes were made so far."""
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM cdcflow_test_audit").fetchone()
    assert row is not None
    return int(row[0])


class _Any:
    """Equal to every value: a field the audited row cannot tell."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()

Key = tuple[str, str]  # (aggregate type, aggregate id)


@dataclass(frozen=True)
class Expected:
    """One event the history promises."""

    event_type: str
    table: str
    tx: int  # the source transaction's id (32-bit, as the WAL has it)
    payload: dict[str, Any]
    seq: int  # the audit row it comes from

    def matches(self, found: Found) -> bool:
        return (
            self.event_type == found.event_type
            and self.table == found.table
            and self.tx == found.tx
            and self.payload == found.payload
        )

    def describe(self) -> str:
        return f"{self.event_type}(tx {self.tx}, {self.table}) {_fields(self.payload)}"


@dataclass(frozen=True)
class Found:
    """One event read from an event topic."""

    event_id: str
    event_type: str
    table: str
    tx: int | None
    payload: dict[str, Any]
    position: tuple[int, int] | None  # (commit LSN, LSN); None without an LSN
    snapshot: bool
    where: str = ""  # topic[partition]@offset

    def describe(self) -> str:
        return (
            f"{self.event_type}(tx {self.tx}, {self.table}, id {self.event_id}"
            f"{', snapshot' if self.snapshot else ''}{' at ' + self.where if self.where else ''}) "
            f"{_fields(self.payload)}"
        )


def _fields(payload: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!s}" for k, v in sorted(payload.items())) + "}"


# -- values: the audit's JSON and the events' Avro brought to one form


def _canon(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    return value


def _ts(value: str | None) -> Any:
    """A timestamptz from the audit's JSON; NULL falls back to the commit time: ANY."""
    return ANY if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def _address(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "street": value["street"],
        "city": value["city"],
        "zip": value["zip"],
        "country": value.get("country"),
    }


# -- the shop's rules, written out from pipeline/domains/shop/mappings.py's table


def _events_of(
    tbl: str, op: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[tuple[Key, str, dict[str, Any]]]:
    """((aggregate type, id), event type, payload) for one row change, by the shop's rules."""
    out: list[tuple[Key, str, dict[str, Any]]] = []
    if op == "DELETE" or new is None:
        return out
    if tbl == "customers":
        key = ("customer", str(new["id"]))
        if op == "INSERT":
            payload = {
                "customer_id": new["id"],
                "email": new["email"],
                "name": new["full_name"],
                "country": new["country"],
                "registered_at": _ts(new["created_at"]),
            }
            out.append((key, "CustomerRegistered", payload))
        elif old is not None:
            if old["email"] != new["email"]:
                payload = {
                    "customer_id": new["id"],
                    "old_email": old["email"],
                    "new_email": new["email"],
                }
                out.append((key, "CustomerEmailChanged", payload))
            if new["status"] == "closed" and old["status"] != "closed":
                payload = {"customer_id": new["id"], "closed_at": _ts(new["updated_at"])}
                out.append((key, "CustomerClosed", payload))
    elif tbl == "products":
        key = ("product", str(new["id"]))
        if op == "INSERT":
            payload = {
                "product_id": new["id"],
                "sku": new["sku"],
                "name": new["name"],
                "description": new["description"],
                "price": _money(new["price"]),
                "currency": new["currency"],
                "active": new["active"],
            }
            out.append((key, "ProductAdded", payload))
        elif old is not None and _money(old["price"]) != _money(new["price"]):
            payload = {
                "product_id": new["id"],
                "old_price": _money(old["price"]),
                "new_price": _money(new["price"]),
                "currency": new["currency"],
                "changed_at": _ts(new["updated_at"]),
            }
            out.append((key, "ProductPriceChanged", payload))
    elif tbl == "orders":
        key = ("order", str(new["id"]))
        if op == "INSERT":
            payload = {
                "order_id": new["id"],
                "customer_id": new["customer_id"],
                "total": _money(new["total"]),
                "currency": new["currency"],
                "shipping_address": _address(new["shipping_address"]),
                "placed_at": _ts(new["placed_at"]),
            }
            out.append((key, "OrderPlaced", payload))
        elif old is not None and old["status"] != new["status"]:
            if new["status"] == "shipped":
                payload = {
                    "order_id": new["id"],
                    "tracking_number": new["tracking_number"],
                    "shipped_at": _ts(new["shipped_at"]),
                }
                out.append((key, "OrderShipped", payload))
            elif new["status"] == "cancelled":
                payload = {
                    "order_id": new["id"],
                    "reason": new["cancel_reason"],
                    "previous_status": old["status"],
                    "cancelled_at": _ts(new["cancelled_at"]),
                }
                out.append((key, "OrderCancelled", payload))
    elif tbl == "order_lines" and op == "INSERT":
        payload = {
            "order_id": new["order_id"],
            "line_no": new["line_no"],
            "product_id": new["product_id"],
            "quantity": new["quantity"],
            "unit_price": _money(new["unit_price"]),
        }
        out.append((("order", str(new["order_id"])), "OrderLineAdded", payload))
    elif tbl == "payments" and op == "INSERT":
        payload = {
            "order_id": new["order_id"],
            "payment_id": new["id"],
            "amount": _money(new["amount"]),
            "method": new["method"],
            "paid_at": _ts(new["paid_at"]),
        }
        out.append((("order", str(new["order_id"])), "OrderPaid", payload))
    return out


@dataclass
class History:
    changes: int = 0
    expected: dict[Key, list[Expected]] = field(default_factory=lambda: defaultdict(list))

    @property
    def events(self) -> int:
        return sum(len(v) for v in self.expected.values())

    def add(self, seq: int, txid: int, tbl: str, op: str, old: Any, new: Any) -> None:
        """One audited row change (rows as the audit's JSON, numbers as Decimal)."""
        self.changes += 1
        for key, event_type, payload in _events_of(tbl, op, old, new):
            # txid_current() carries the xid epoch in its high 32 bits; the WAL does not.
            tx = txid % 2**32
            self.expected[key].append(
                Expected(event_type, f"public.{tbl}", tx, _canon(payload), seq)
            )


class Snapshot:
    """Which transactions had committed when a run began (``pg_current_snapshot()``).

    The run's changes are those of every other transaction: a sequence number
    or a WAL position would draw the line wrongly for a transaction of another
    session that was open when the run began and committed after.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        xmin, xmax, xip = text.split(":")
        self.xmin, self.xmax = int(xmin), int(xmax)
        self.xip = {int(x) for x in xip.split(",") if x}

    @classmethod
    def now(cls, conn: psycopg.Connection[Any]) -> Snapshot:
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        return cls(row[0])

    def before(self, tx: int) -> bool:
        """Had the transaction ``tx`` (its 32-bit id, as the WAL has it) committed?"""
        xmin, xmax = self.xmin % 2**32, self.xmax % 2**32
        return tx < xmin or (tx < xmax and tx not in {x % 2**32 for x in self.xip})


def expected_events(conn: psycopg.Connection[Any], since: Snapshot, until: Snapshot) -> History:
    """The events of the changes committed after ``since`` and by ``until``, per aggregate, in order.

    Other sessions write to the shop's tables too: their changes after ``until``
    are neither expected nor counted when found (:meth:`Snapshot.before`).
    """
    hist = History()
    rows = conn.execute(
        "SELECT seq, txid, tbl, op, old_row::text, new_row::text FROM cdcflow_test_audit"
        " WHERE txid >= %s AND NOT pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
        " AND pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
        " ORDER BY seq",
        (since.xmin, since.text, until.text),
    )
    for seq, txid, tbl, op, old, new in rows:
        hist.add(seq, txid, tbl, op, _json(old), _json(new))
    return hist


def _json(text: str | None) -> Any:
    # Exact numbers: psycopg's own jsonb loader would make 0.1 a float.
    return None if text is None else json.loads(text, parse_float=Decimal)


def found_event(value: dict[str, Any], where: str = "") -> tuple[Key, Found]:
    """An event as the Avro deserializer returns it: (aggregate, :class:`Found`)."""
    meta = value["metadata"]
    source = meta["source"]
    lsn, commit_lsn = source.get("lsn"), source.get("commit_lsn")
    position = None if lsn is None else (commit_lsn if commit_lsn is not None else -1, lsn)
    payload = {k: _canon(v) for k, v in value.items() if k != "metadata"}
    found = Found(
        event_id=str(meta["event_id"]),
        event_type=meta["event_type"],
        table=source["table"],
        tx=source.get("tx_id"),
        payload=payload,
        position=position,
        snapshot=bool(source.get("snapshot")),
        where=where,
    )
    return (meta["aggregate_type"], meta["aggregate_id"]), found


@dataclass
class Verdict:
    changes: int
    expected: int
    found: int
    duplicates: int
    missing: int
    unexpected: int
    out_of_order: int
    positions_back: int = 0
    snapshot: int = 0
    without_lsn: int = 0
    examples: list[str] = field(default_factory=list)
    # (table, source transaction) of every missing event: where to look for its change.
    missing_changes: set[tuple[str, int]] = field(default_factory=set)

    @property
    def exact(self) -> bool:
        """Every expected event once, nothing else, in order."""
        return (
            self.duplicates,
            self.missing,
            self.unexpected,
            self.out_of_order,
            self.positions_back,
            self.snapshot,
            self.without_lsn,
        ) == (0, 0, 0, 0, 0, 0, 0) and self.found == self.expected

    def line(self) -> str:
        return (
            f"changes made {self.changes}, events expected {self.expected}, found {self.found}, "
            f"duplicates {self.duplicates}, missing {self.missing}, unexpected {self.unexpected}, "
            f"aggregates out of order {self.out_of_order}, "
            f"aggregates whose positions go back {self.positions_back}, "
            f"snapshot-marked {self.snapshot}, without LSN {self.without_lsn}"
        )

    def report(self) -> str:
        """:meth:`line` and the first differences, for an assertion message."""
        return "\n  ".join([self.line(), *self.examples])


def compare(history: History, found: dict[Key, list[Found]], examples: int = 8) -> Verdict:
    """``found`` maps (aggregate type, id) to its events in partition order."""
    ids = Counter(f.event_id for evs in found.values() for f in evs)
    verdict = Verdict(
        changes=history.changes,
        expected=history.events,
        found=sum(len(v) for v in found.values()),
        duplicates=sum(n - 1 for n in ids.values() if n > 1),
        missing=0,
        unexpected=0,
        out_of_order=0,
        snapshot=sum(f.snapshot for evs in found.values() for f in evs),
        without_lsn=sum(f.position is None for evs in found.values() for f in evs),
    )

    def note(text: str) -> None:
        if len(verdict.examples) < examples:
            verdict.examples.append(text)

    for key in sorted(set(history.expected) | set(found)):
        want = history.expected.get(key, [])
        taken = [False] * len(want)
        order: list[int] = []  # the expected index of each matched event, in partition order
        seen: set[str] = set()
        last: tuple[int, int] | None = None
        went_back = False
        for f in found.get(key, []):
            if f.event_id in seen:
                note(f"{key[0]} {key[1]}: duplicate {f.describe()}")
                continue
            seen.add(f.event_id)
            if f.position is None:
                note(f"{key[0]} {key[1]}: without an LSN {f.describe()}")
            if f.position is not None and not f.snapshot:
                went_back |= last is not None and f.position < last
                last = f.position
            i = next((i for i, e in enumerate(want) if not taken[i] and e.matches(f)), None)
            if i is None:
                verdict.unexpected += 1
                note(f"{key[0]} {key[1]}: unexpected {f.describe()}")
                continue
            taken[i] = True
            order.append(i)
        for i, e in enumerate(want):
            if not taken[i]:
                verdict.missing += 1
                verdict.missing_changes.add((e.table, e.tx))
                note(f"{key[0]} {key[1]}: missing {e.describe()}")
        if order != sorted(order):
            verdict.out_of_order += 1
            note(f"{key[0]} {key[1]}: out of order, as expected #{order}")
        if went_back:
            verdict.positions_back += 1
            note(f"{key[0]} {key[1]}: a source position goes back")
    return verdict
