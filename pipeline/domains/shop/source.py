"""The shop's source database: schema and seed data.

The schema (``schema.sql``) is idempotent. Seeding adds customers and a
product catalogue only when the tables are empty, so ``cdcflow demo`` can be
run again without piling up rows.
"""

from __future__ import annotations

import random
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg

__all__ = ["apply_schema", "seed"]

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Lamport",
]
COUNTRIES = ["DE", "FR", "NL", "PL", "SE", "ES", "IT", "AT"]
PRODUCTS = [
    ("Espresso beans 1kg", "19.90"),
    ("Burr grinder", "129.00"),
    ("Milk jug", "14.50"),
    ("Pour-over kettle", "49.95"),
    ("Paper filters (100)", "4.20"),
    ("Tamper 58mm", "24.00"),
    ("Scale 0.1g", "34.99"),
    ("Descaler", "9.80"),
    ("Cup set", "27.00"),
    ("Travel mug", "18.75"),
]


def apply_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the shop's types, tables and replica identities (idempotent)."""
    sql = resources.files("pipeline.domains.shop").joinpath("schema.sql").read_text()
    with conn.transaction():
        conn.execute(sql)  # type: ignore[arg-type,unused-ignore]


def seed(
    conn: psycopg.Connection[Any], customers: int = 200, products: int = 40, rng_seed: int = 7
) -> dict[str, int]:
    """Insert customers and products when the tables are empty. Returns rows added per table."""
    rng = random.Random(rng_seed)
    added = {"customers": 0, "products": 0}
    with conn.transaction():
        if conn.execute("SELECT count(*) FROM customers").fetchone() == (0,):
            rows = []
            for i in range(customers):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                rows.append(
                    (
                        f"{first}.{last}.{i}@example.com".lower(),
                        f"{first} {last}",
                        rng.choice(COUNTRIES),
                    )
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO customers (email, full_name, country) VALUES (%s, %s, %s)", rows
                )
            added["customers"] = len(rows)
        if conn.execute("SELECT count(*) FROM products").fetchone() == (0,):
            rows2 = []
            for i in range(products):
                name, price = PRODUCTS[i % len(PRODUCTS)]
                variant = i // len(PRODUCTS)
                rows2.append(
                    (
                        f"SKU-{i:05d}",
                        name if variant == 0 else f"{name} v{variant + 1}",
                        Decimal(price) + variant,
                    )
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO products (sku, name, price) VALUES (%s, %s, %s)", rows2
                )
            added["products"] = len(rows2)
    return added
