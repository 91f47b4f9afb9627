"""Replica identities: what a before image really carries, and cutting it down to that (pure).

PostgreSQL writes the old row of an UPDATE or DELETE to the WAL according to
the table's ``REPLICA IDENTITY``:

============  ==================================================================
FULL          every column
DEFAULT       the primary key's columns (nothing on a table without one); an
              UPDATE carries them only when the key changed
USING INDEX   the identity index's columns; an UPDATE only when they changed
NOTHING       nothing
============  ==================================================================

Debezium still writes a whole before image: the columns the WAL did not carry
are null, or, when NOT NULL, the type's default (``0``, ``""``, ``false``).
:func:`restrict` removes those columns from a decoded :class:`Change`'s before
image and records them in :attr:`Change.withheld`, so that
:meth:`Change.old` raises :class:`~pipeline.errors.ColumnWithheld` for them
instead of returning a value the source never sent. A TOASTed column of the
after image that decoding filled from such a before image is put back to
:data:`~pipeline.cdc.UNCHANGED`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, Literal

from pipeline.cdc.model import UNCHANGED, Change

__all__ = [
    "IdentityMode",
    "ReplicaIdentity",
    "contradicts",
    "key_identity",
    "key_only_shape",
    "restrict",
    "stale_full_identity",
]

IdentityMode = Literal["full", "default", "index", "nothing"]

_MODES: Final[dict[str, IdentityMode]] = {
    "f": "full",
    "d": "default",
    "i": "index",
    "n": "nothing",
}
_PLAIN_NAME: Final = re.compile(r"[a-z_][a-z0-9_$]*\Z")
_OLD_IMAGE_OPS: Final = frozenset({"u", "d"})


def _quoted(table: str) -> str:
    """``schema.table`` as SQL, each part quoted where PostgreSQL would need it."""
    parts = table.split(".", 1)
    return ".".join(p if _PLAIN_NAME.match(p) else '"' + p.replace('"', '""') + '"' for p in parts)


@dataclass(frozen=True, slots=True)
class ReplicaIdentity:
    """A table's replica identity: its mode and the columns an old row carries.

    ``columns`` are the identity's columns (the primary key's for DEFAULT, the
    index's for USING INDEX; empty for FULL, where every column is carried,
    and for NOTHING). ``index`` names the identity index (USING INDEX).
    ``assumed`` is None when the identity was read from the source
    database's catalogue, else why cdcflow assumed it instead (then
    ``columns`` are the record's key columns).
    """

    mode: IdentityMode
    columns: tuple[str, ...] = ()
    index: str | None = None
    assumed: str | None = None
    fix: str | None = None
    """What to do about an assumed identity, when it is not "let cdcflow look it up"."""

    @classmethod
    def from_catalog(
        cls, relreplident: str, columns: Iterable[str] = (), index: str | None = None
    ) -> ReplicaIdentity:
        """From ``pg_class.relreplident`` (``f``, ``d``, ``i``, ``n``) and the identity's columns.

        Raises:
            ValueError: an unknown ``relreplident``.
        """
        mode = _MODES.get(relreplident)
        if mode is None:
            raise ValueError(f"unknown pg_class.relreplident {relreplident!r}")
        if mode in ("full", "nothing"):
            return cls(mode)
        return cls(mode, tuple(columns), index if mode == "index" else None)

    @property
    def full(self) -> bool:
        return self.mode == "full"

    def carries(self, column: str) -> bool:
        """True when an old row of this identity carries ``column``."""
        return self.mode == "full" or column in self.columns

    def describe(self) -> str:
        """The identity as an operator reads it, e.g. ``REPLICA IDENTITY DEFAULT (id)``."""
        if self.assumed is not None:
            cols = ", ".join(self.columns) or "no column"
            return f"replica identity not known ({self.assumed}): only the key ({cols}) is trusted"
        if self.mode == "full":
            return "REPLICA IDENTITY FULL"
        if self.mode == "nothing":
            return "REPLICA IDENTITY NOTHING (old rows carry no column)"
        if self.mode == "default":
            if not self.columns:
                return "REPLICA IDENTITY DEFAULT without a primary key (old rows carry no column)"
            return f"REPLICA IDENTITY DEFAULT (primary key {', '.join(self.columns)})"
        cols = ", ".join(self.columns) or "no column: the index is gone"
        return f"REPLICA IDENTITY USING INDEX {self.index or '?'} ({cols})"

    def hint(self, table: str, column: str) -> str:
        """What makes old rows of ``table`` carry ``column``."""
        full = f"ALTER TABLE {_quoted(table)} REPLICA IDENTITY FULL"
        if self.fix is not None:
            return self.fix
        if self.assumed is not None:
            return (
                f"let cdcflow learn the table's replica identity (transformer.identity_lookup on, "
                f"source.* a login on the captured server), and run '{full}' if it is not FULL"
            )
        if self.mode == "index" and self.index:
            return (
                f"add {column} to the replica identity index {self.index}, "
                f"or run '{full}' so old rows carry every column"
            )
        return f"run '{full}' so old rows carry every column"


def key_identity(change: Change, reason: str) -> ReplicaIdentity:
    """The identity assumed when the catalogue cannot say: the record's key columns only."""
    return ReplicaIdentity("default", tuple(change.key), assumed=reason)


def stale_full_identity(change: Change) -> ReplicaIdentity:
    """The identity of an old row that a FULL table's catalogue entry cannot explain.

    The catalogue says FULL, but the old row has the shape Debezium gives a
    key-only one (:attr:`Change.key_only_shape`): it was most likely written
    before ``ALTER TABLE ... REPLICA IDENTITY FULL`` (a backlog, a redrive, a
    replay). Only the key is trusted; a rule that needs more dead-letters.
    """
    return ReplicaIdentity(
        "default",
        tuple(change.key),
        assumed="the table is FULL now, but this old row holds only its key's values, every "
        "other column null or a type's default: it was written under an earlier identity",
        fix="nothing to change if the table is REPLICA IDENTITY FULL now: the change was written "
        "before; map it from the key, or redrive it with a rule that does not read old values",
    )


# Raw JSON values Debezium puts in an old row's column that the WAL did not carry (a
# NOT NULL column gets its schema default, or its type's zero, in the JsonConverter's form).
_ZERO_VALUES: Final = frozenset({0, "", "AA=="})
# The epoch, or midnight, as io.debezium.time.ZonedTimestamp / ZonedTime text.
_EPOCH_TEXT: Final = re.compile(r"(1970-01-01T)?00:00(:00(\.0+)?)?(Z|[+-]00(:?00)?)?\Z")


def _stand_in(raw: Any, schema: Mapping[str, Any] | None) -> bool:
    if raw is None or raw is False:
        return True
    if isinstance(raw, bool):
        return False
    if isinstance(raw, int | float | str) and raw in _ZERO_VALUES:
        return True
    if isinstance(raw, str) and _EPOCH_TEXT.match(raw):
        return True
    if isinstance(raw, dict) and raw.get("value") in ("AA==", ""):
        return True  # io.debezium.data.VariableScaleDecimal zero
    if schema is not None and "default" in schema:
        return bool(raw == schema["default"])
    return False


def key_only_shape(
    raw_before: Any,
    key: Iterable[str],
    columns: Mapping[str, Mapping[str, Any] | None] | None,
) -> bool:
    """True when an old row could be a key-only one: every non-key column null or a stand-in.

    ``raw_before`` is the before image as parsed from JSON, ``columns`` the
    column schemas by name (None: schemaless). A row with no column outside
    the key is never key-only shaped (there is nothing it could lack).
    """
    if not isinstance(raw_before, dict):
        return False
    keys = set(key)
    others = [c for c in raw_before if c not in keys]
    if not others:
        return False
    get = columns.get if columns is not None else (lambda _c: None)
    return all(_stand_in(raw_before[c], get(c)) for c in others)


def restrict(change: Change, identity: ReplicaIdentity) -> Change:
    """``change`` with its before image cut to the columns ``identity`` carries.

    The other columns are removed (never given a value) and listed in
    ``withheld``; after-image columns that decoding filled from them (an
    unchanged TOASTed value) become :data:`UNCHANGED` again, and a delete's key
    loses them too (Debezium takes it from the old row). Creates, reads,
    truncates, changes without a before image and FULL tables come back as
    they are.
    """
    before = change.before
    if identity.mode == "full" or before is None or change.op not in _OLD_IMAGE_OPS:
        return change
    keep = identity.columns
    withheld = frozenset(c for c in before if c not in keep)
    if not withheld:
        return replace(change, identity=identity)
    after = change.after
    refilled = [
        c
        for c in withheld & change.toasted
        if after is not None and c in after and before[c] is not UNCHANGED
    ]
    if refilled and after is not None:
        # A TOASTed column of the after image was filled from the before image's
        # stand-in value: it was not sent, and is UNCHANGED again.
        after = MappingProxyType({**after, **dict.fromkeys(refilled, UNCHANGED)})
    key = change.key
    if change.op == "d" and any(k in withheld for k in key):
        # A delete's record key is taken from the old row: a key column the
        # identity does not carry holds the stand-in value there too.
        key = MappingProxyType({k: v for k, v in key.items() if k not in withheld})
    return replace(
        change,
        key=key,
        # Only the kept columns are read: a LazyRow decodes no withheld one.
        before=MappingProxyType({c: before[c] for c in before if c in keep}),
        after=after,
        withheld=withheld,
        identity=identity,
    )


def contradicts(identity: ReplicaIdentity, change: Change) -> bool:
    """True when ``change`` could not have been written under ``identity``.

    A FULL table's UPDATE or DELETE always carries its old row; under any
    other identity an old row carries every identity column, NOTHING (and
    DEFAULT without a primary key) carries none, and an UPDATE carries one
    only when an identity column changed. The catalogue reads such a
    table's identity again.
    """
    if change.op not in _OLD_IMAGE_OPS:
        return False
    before = change.before
    if identity.mode == "full":
        return before is None
    if before is None:
        return False
    if not identity.columns:
        return True
    if any(c not in before for c in identity.columns):
        return True
    if change.op != "u" or change.after is None:
        return False
    after = change.after
    return all(
        before[c] is not UNCHANGED and after.get(c, UNCHANGED) == before[c]
        for c in identity.columns
    )
