"""Build :class:`Change` values directly, for tests of predicates and rules."""

from __future__ import annotations

from typing import Any

from pipeline.cdc import Change, Op, RecordRef
from pipeline.events import SourcePosition


def make_change(
    op: Op,
    table: str = "public.t",
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    key: dict[str, Any] | None = None,
    lsn: int = 1000,
    tx_id: int | None = 7,
    ts_ms: int = 1718000000000,
    snapshot: bool = False,
) -> Change:
    row = after if after is not None else before or {}
    return Change(
        op=op,
        table=table,
        connector="shop",
        key=key if key is not None else ({"id": row["id"]} if "id" in row else {}),
        before=before,
        after=after,
        source=SourcePosition(
            connector="shop",
            table=table,
            lsn=lsn,
            tx_id=tx_id,
            commit_ts_ms=ts_ms,
            snapshot=snapshot,
        ),
        record=RecordRef(f"shop.{table}", 0, 42, b'{"id": 1}', b"{...}"),
    )
