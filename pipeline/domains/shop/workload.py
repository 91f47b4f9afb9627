"""A workload of shop business operations against the source database.

Each operation is one database transaction, as the application would run it:
register a customer, change an email, place an order (order + lines), pay
(payment + status), ship, cancel, change a price. Operations are paced to a
target rate; the generator reports what it did and the rate it reached.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

__all__ = ["OPERATIONS", "Workload", "WorkloadReport"]

# Relative weights of the business operations.
OPERATIONS: dict[str, int] = {
    "register_customer": 10,
    "change_email": 8,
    "place_order": 32,
    "pay_order": 22,
    "ship_order": 15,
    "cancel_order": 6,
    "change_price": 7,
}


@dataclass
class WorkloadReport:
    operations: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.operations.values())

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "operations": dict(self.operations),
            "skipped": dict(self.skipped),
            "total": self.total,
            "seconds": round(self.seconds, 2),
            "rate": round(self.rate, 1),
        }


def _on_an_order(
    pool: str,
) -> Callable[[Callable[[Workload, UUID], None]], Callable[[Workload], bool]]:
    """An operation on one order taken at random from the workload's list ``pool`` (``placed``
    or ``paid``); False, doing nothing, when that list is empty."""

    def decorate(op: Callable[[Workload, UUID], None]) -> Callable[[Workload], bool]:
        @functools.wraps(op)
        def run(self: Workload) -> bool:
            oid = self._take(getattr(self, pool))
            if oid is None:
                return False
            op(self, oid)
            return True

        return run

    return decorate


class Workload:
    """Business operations on the shop database, paced to ``rate`` per second."""

    def __init__(self, conn: psycopg.Connection[Any], rng_seed: int | None = None) -> None:
        self.conn = conn
        self.rng = random.Random(rng_seed)
        self.customers: list[int] = []
        self.products: dict[int, Decimal] = {}
        self.placed: list[UUID] = []
        self.paid: list[UUID] = []
        self._load()

    def _load(self) -> None:
        with self.conn.transaction():
            self.customers = [
                r[0] for r in self.conn.execute("SELECT id FROM customers WHERE status = 'active'")
            ]
            self.products = dict(
                self.conn.execute("SELECT id, price FROM products WHERE active").fetchall()
            )
            for oid, status in self.conn.execute(
                "SELECT id, status::text FROM orders WHERE status IN ('placed', 'paid')"
            ):
                (self.placed if status == "placed" else self.paid).append(oid)
        if not self.customers or not self.products:
            raise RuntimeError(
                "the shop has no customers or products: run 'cdcflow demo setup' first"
            )

    # -- operations; each returns False when it had nothing to act on

    def register_customer(self) -> bool:
        n = self.rng.randrange(10**9)
        row = self.conn.execute(
            "INSERT INTO customers (email, full_name, country) VALUES (%s, %s, %s) RETURNING id",
            (
                f"new.{n}.{time.time_ns()}@example.com",
                f"Customer {n}",
                self.rng.choice(["DE", "FR", "NL"]),
            ),
        ).fetchone()
        assert row is not None
        self.customers.append(row[0])
        return True

    def change_email(self) -> bool:
        cid = self.rng.choice(self.customers)
        self.conn.execute(
            "UPDATE customers SET email = %s, updated_at = now() WHERE id = %s",
            (f"changed.{cid}.{time.time_ns()}@example.com", cid),
        )
        return True

    def place_order(self) -> bool:
        cid = self.rng.choice(self.customers)
        lines = self.rng.sample(
            sorted(self.products), k=min(len(self.products), self.rng.randint(1, 4))
        )
        qty = [self.rng.randint(1, 3) for _ in lines]
        total = sum((self.products[p] * q for p, q in zip(lines, qty, strict=True)), Decimal("0"))
        address = {
            "street": f"{self.rng.randint(1, 200)} Main St",
            "city": "Berlin",
            "zip": "10115",
        }
        row = self.conn.execute(
            "INSERT INTO orders (customer_id, total, shipping_address) VALUES (%s, %s, %s) RETURNING id",
            (cid, total, json.dumps(address)),
        ).fetchone()
        assert row is not None
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price)"
                " VALUES (%s, %s, %s, %s, %s)",
                [
                    (row[0], i + 1, p, q, self.products[p])
                    for i, (p, q) in enumerate(zip(lines, qty, strict=True))
                ],
            )
        self.placed.append(row[0])
        return True

    def _take(self, pool: list[UUID]) -> UUID | None:
        if not pool:
            return None
        i = self.rng.randrange(len(pool))
        pool[i], pool[-1] = pool[-1], pool[i]
        return pool.pop()

    @_on_an_order("placed")
    def pay_order(self, oid: UUID) -> None:
        row = self.conn.execute("SELECT total FROM orders WHERE id = %s", (oid,)).fetchone()
        assert row is not None
        self.conn.execute(
            "INSERT INTO payments (order_id, amount, method) VALUES (%s, %s, %s)",
            (oid, row[0], self.rng.choice(["card", "paypal", "invoice"])),
        )
        self.conn.execute(
            "UPDATE orders SET status = 'paid', paid_at = now(), updated_at = now() WHERE id = %s",
            (oid,),
        )
        self.paid.append(oid)

    @_on_an_order("paid")
    def ship_order(self, oid: UUID) -> None:
        self.conn.execute(
            "UPDATE orders SET status = 'shipped', shipped_at = now(), tracking_number = %s,"
            " updated_at = now() WHERE id = %s",
            (f"TRK{self.rng.randrange(10**10):010d}", oid),
        )

    @_on_an_order("placed")
    def cancel_order(self, oid: UUID) -> None:
        self.conn.execute(
            "UPDATE orders SET status = 'cancelled', cancelled_at = now(), cancel_reason = %s,"
            " updated_at = now() WHERE id = %s",
            (self.rng.choice(["customer request", "payment timeout", "out of stock"]), oid),
        )

    def change_price(self) -> bool:
        pid = self.rng.choice(sorted(self.products))
        factor = Decimal(self.rng.choice(["0.90", "0.95", "1.05", "1.10"]))
        price = (self.products[pid] * factor).quantize(Decimal("0.01"))
        self.conn.execute(
            "UPDATE products SET price = %s, updated_at = now() WHERE id = %s", (price, pid)
        )
        self.products[pid] = price
        return True

    def step(self, name: str) -> bool:
        """Run one operation in its own transaction. False when it had nothing to act on."""
        op: Callable[[], bool] = getattr(self, name)
        with self.conn.transaction():
            return op()

    def run(
        self,
        rate: float,
        duration: float | None = None,
        count: int | None = None,
        progress: Callable[[WorkloadReport], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> WorkloadReport:
        """Run operations at ``rate`` per second for ``duration`` seconds or ``count`` operations."""
        names = list(OPERATIONS)
        weights = [OPERATIONS[n] for n in names]
        report = WorkloadReport()
        started = time.monotonic()
        next_at = started
        last_progress = started
        interval = 1.0 / rate if rate > 0 else 0.0
        while not should_stop():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if count is not None and report.total >= count:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            name = self.rng.choices(names, weights)[0]
            if self.step(name):
                report.operations[name] += 1
            else:
                report.skipped[name] += 1
            if progress and time.monotonic() - last_progress >= 5:
                report.seconds = time.monotonic() - started
                progress(report)
                last_progress = time.monotonic()
        report.seconds = time.monotonic() - started
        return report
