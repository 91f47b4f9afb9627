"""The database's own history of changes, and the domain events it must yield.

An audit trigger on each shop table writes every row change (with its
transaction) into ``cdcflow_test_audit`` — a table Debezium does not capture.
:func:`expected_events` turns that history into the events the shop's rules
promise, per aggregate and in order, independently of cdcflow's code, so the
fault tests compare what the pipeline produced with what the database did.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

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
    conn.execute(AUDIT_SQL)
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM cdcflow_test_audit").fetchone()
    assert row is not None
    return int(row[0])


def _events_of(
    tbl: str, op: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[tuple[str, str, str]]:
    """(aggregate type, aggregate id, event type) for one row change, by the shop's rules."""
    out: list[tuple[str, str, str]] = []
    if tbl == "customers":
        assert new is not None
        if op == "INSERT":
            out.append(("customer", str(new["id"]), "CustomerRegistered"))
        elif op == "UPDATE" and old is not None:
            if old["email"] != new["email"]:
                out.append(("customer", str(new["id"]), "CustomerEmailChanged"))
            if new["status"] == "closed" and old["status"] != "closed":
                out.append(("customer", str(new["id"]), "CustomerClosed"))
    elif tbl == "products":
        assert new is not None
        if op == "INSERT":
            out.append(("product", str(new["id"]), "ProductAdded"))
        elif op == "UPDATE" and old is not None and old["price"] != new["price"]:
            out.append(("product", str(new["id"]), "ProductPriceChanged"))
    elif tbl == "orders":
        assert new is not None
        if op == "INSERT":
            out.append(("order", str(new["id"]), "OrderPlaced"))
        elif op == "UPDATE" and old is not None and old["status"] != new["status"]:
            kind = {"shipped": "OrderShipped", "cancelled": "OrderCancelled"}.get(new["status"])
            if kind:
                out.append(("order", str(new["id"]), kind))
    elif tbl == "order_lines" and op == "INSERT":
        assert new is not None
        out.append(("order", str(new["order_id"]), "OrderLineAdded"))
    elif tbl == "payments" and op == "INSERT":
        assert new is not None
        out.append(("order", str(new["order_id"]), "OrderPaid"))
    return out


@dataclass
class History:
    changes: int = 0
    expected: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def events(self) -> int:
        return sum(len(v) for v in self.expected.values())


def expected_events(conn: psycopg.Connection[Any], after_seq: int) -> History:
    """The events the changes after ``after_seq`` must yield, per (aggregate type, id), in order."""
    hist = History()
    rows = conn.execute(
        "SELECT tbl, op, old_row, new_row FROM cdcflow_test_audit WHERE seq > %s ORDER BY seq",
        (after_seq,),
    )
    for tbl, op, old, new in rows:
        hist.changes += 1
        for agg_type, agg_id, event_type in _events_of(tbl, op, old, new):
            hist.expected[(agg_type, agg_id)].append(event_type)
    return hist


@dataclass
class Verdict:
    changes: int
    expected: int
    found: int
    duplicates: int
    missing: int
    unexpected: int
    out_of_order: int

    def line(self) -> str:
        return (
            f"changes made {self.changes}, events expected {self.expected}, found {self.found}, "
            f"duplicates {self.duplicates}, missing {self.missing}, unexpected {self.unexpected}, "
            f"aggregates out of order {self.out_of_order}"
        )


def compare(history: History, found: dict[tuple[str, str], list[tuple[str, str]]]) -> Verdict:
    """``found`` maps (aggregate type, id) to [(event id, event type)] in partition order."""
    ids = Counter(eid for evs in found.values() for eid, _ in evs)
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    missing = unexpected = out_of_order = 0
    for key in set(history.expected) | set(found):
        want = history.expected.get(key, [])
        seen: list[str] = []
        once: set[str] = set()
        for eid, etype in found.get(key, []):
            if eid not in once:
                once.add(eid)
                seen.append(etype)
        w, s = Counter(want), Counter(seen)
        missing += sum((w - s).values())
        unexpected += sum((s - w).values())
        if w == s and want != seen:
            out_of_order += 1
    return Verdict(
        changes=history.changes,
        expected=history.events,
        found=sum(len(v) for v in found.values()),
        duplicates=duplicates,
        missing=missing,
        unexpected=unexpected,
        out_of_order=out_of_order,
    )
