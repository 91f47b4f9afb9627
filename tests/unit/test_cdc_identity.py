"""Key-only before images never leak: replica identities, the catalogue, and the dead letters.

Debezium writes a whole before image whatever the table's replica identity;
the columns the WAL did not carry hold null or, when NOT NULL, the type's
default. These tests build such images (by hand, and as Debezium records)
and check that no rule can read a value the source did not send.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

import pytest

from pipeline.cdc import (
    UNCHANGED,
    Change,
    ReplicaIdentity,
    contradicts,
    decode_record,
    key_identity,
    restrict,
)
from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.errors import ColumnWithheld, ConfigError, MappingError, SourceUnavailable
from pipeline.mapping import (
    BeforeImageMissing,
    Rules,
    changed,
    changed_from,
    changed_to,
    equals,
    map_change,
)
from pipeline.settings import load_settings
from pipeline.transformer import Transformer, build_transformer, dead_letter
from pipeline.transformer.factory import identity_catalog
from pipeline.transformer.identities import IdentityCatalog, catalog_lookup
from tests.domains.identity.events import AccountClosed
from tests.unit import debezium as dbz
from tests.unit.changes import make_change
from tests.unit.transformer_fakes import FakeMessage, FakeSerializer

ACCOUNTS = "public.accounts"
DEFAULT = ReplicaIdentity.from_catalog("d", ["id"])
FULL = ReplicaIdentity.from_catalog("f")
INDEX = ReplicaIdentity.from_catalog("i", ["code"], "badges_code")
NOTHING = ReplicaIdentity.from_catalog("n")
NO_PRIMARY_KEY = ReplicaIdentity.from_catalog("d", [])

# A DELETE's before image under REPLICA IDENTITY DEFAULT, as Debezium writes it:
# the key is real; NOT NULL columns hold their type's default, nullable ones null.
KEY_ONLY = {"id": 1, "customer_ref": 0, "owner": "", "active": False, "note": None}
FULL_ROW = {"id": 1, "customer_ref": 4711, "owner": "ada", "active": True, "note": "vip"}
FIX = "run 'ALTER TABLE public.accounts REPLICA IDENTITY FULL' so old rows carry every column"


def delete(before: dict[str, Any], table: str = ACCOUNTS, **kw: Any) -> Change:
    return make_change("d", table, before=before, **kw)


# -- the identity value


@pytest.mark.parametrize(
    ("relreplident", "columns", "index", "expected"),
    [
        ("f", ["id"], None, ReplicaIdentity("full")),
        ("d", ["id", "region"], None, ReplicaIdentity("default", ("id", "region"))),
        ("i", ["code"], "badges_code", ReplicaIdentity("index", ("code",), "badges_code")),
        ("n", ["id"], None, ReplicaIdentity("nothing")),
    ],
)
def test_identity_from_the_catalogue(
    relreplident: str, columns: list[str], index: str | None, expected: ReplicaIdentity
) -> None:
    assert ReplicaIdentity.from_catalog(relreplident, columns, index) == expected


def test_an_unknown_relreplident_is_refused() -> None:
    with pytest.raises(ValueError, match="'x'"):
        ReplicaIdentity.from_catalog("x")


def test_identities_describe_themselves_as_sql_says_them() -> None:
    assert FULL.describe() == "REPLICA IDENTITY FULL"
    assert DEFAULT.describe() == "REPLICA IDENTITY DEFAULT (primary key id)"
    assert INDEX.describe() == "REPLICA IDENTITY USING INDEX badges_code (code)"
    assert "NOTHING" in NOTHING.describe()
    assert "without a primary key" in NO_PRIMARY_KEY.describe()


def test_the_fix_quotes_names_that_need_it() -> None:
    assert 'ALTER TABLE app."Order Lines" REPLICA IDENTITY FULL' in DEFAULT.hint(
        "app.Order Lines", "qty"
    )


# -- DEFAULT: a delete carries the key only


def test_default_delete_keeps_the_key_and_withholds_the_rest() -> None:
    change = restrict(delete(KEY_ONLY), DEFAULT)
    assert dict(change.before or {}) == {"id": 1}
    assert change.withheld == {"customer_ref", "owner", "active", "note"}
    assert change.identity == DEFAULT
    assert change.old("id") == 1
    assert dict(change.row) == {"id": 1}  # what was sent, nothing more
    assert dict(change.key) == {"id": 1}


@pytest.mark.parametrize("column", ["customer_ref", "owner", "active", "note"])
def test_default_delete_old_of_a_withheld_column_raises_naming_everything(column: str) -> None:
    change = restrict(delete(KEY_ONLY), DEFAULT)
    with pytest.raises(ColumnWithheld) as caught:
        change.old(column)
    err = caught.value
    assert isinstance(err, KeyError)
    assert (err.table, err.op, err.column) == (ACCOUNTS, "d", column)
    assert err.identity == "REPLICA IDENTITY DEFAULT (primary key id)"
    assert err.message == (
        f"public.accounts op 'd': column {column!r} was not sent in the before image "
        "(REPLICA IDENTITY DEFAULT (primary key id); the source sent id)"
    )
    assert err.hint == FIX
    assert str(err) == f"{err.message}\n  hint: {FIX}"  # not KeyError's quoted repr


def test_old_with_a_default_returns_the_callers_default_for_a_withheld_column() -> None:
    change = restrict(delete(KEY_ONLY), DEFAULT)
    assert change.old("customer_ref", None) is None
    assert change.old("note", "n/a") == "n/a"
    with pytest.raises(KeyError):  # how existing code catches an absent column
        change.old("owner")


def test_a_column_that_does_not_exist_is_a_plain_key_error() -> None:
    change = restrict(delete(KEY_ONLY), DEFAULT)
    with pytest.raises(KeyError) as caught:
        change.old("no_such_column")
    assert not isinstance(caught.value, ColumnWithheld)


def test_default_update_that_changed_the_key_carries_the_old_key_only() -> None:
    before = {**KEY_ONLY}
    after = {**FULL_ROW, "id": 2}
    change = restrict(make_change("u", ACCOUNTS, before=before, after=after), DEFAULT)
    assert dict(change.before or {}) == {"id": 1}
    assert dict(change.after or {}) == after  # the new row is whole
    assert change.new("customer_ref") == 4711
    assert changed("id")(change)
    with pytest.raises(BeforeImageMissing) as caught:
        changed("customer_ref")(change)
    assert caught.value.hint == FIX
    assert caught.value.column == "customer_ref"
    assert "REPLICA IDENTITY DEFAULT" in str(caught.value)
    with pytest.raises(BeforeImageMissing):
        changed_to("customer_ref", 4711)(change)


def test_default_update_without_a_before_image_is_left_as_it_is() -> None:
    change = make_change("u", ACCOUNTS, before=None, after=FULL_ROW)
    assert restrict(change, DEFAULT) is change
    with pytest.raises(BeforeImageMissing) as caught:
        changed("owner")(change)
    assert "REPLICA IDENTITY FULL" in (caught.value.hint or "")


def test_predicates_on_a_delete_never_see_the_stand_in_values() -> None:
    change = restrict(delete(KEY_ONLY), DEFAULT)
    with pytest.raises(BeforeImageMissing) as caught:
        changed_from("customer_ref", 0)(change)  # would be True on Debezium's 0
    assert caught.value.hint == FIX
    with pytest.raises(BeforeImageMissing):
        equals("owner", "")(change)
    with pytest.raises(BeforeImageMissing):
        equals("note", None)(change)
    assert equals("id", 1)(change)
    assert changed("owner")(change)  # a delete changes every column: no old value read


# -- FULL: nothing to do


def test_full_images_come_back_untouched() -> None:
    change = delete(FULL_ROW)
    assert restrict(change, FULL) is change
    assert change.old("customer_ref") == 4711
    update = make_change("u", ACCOUNTS, before=FULL_ROW, after={**FULL_ROW, "owner": "bob"})
    assert restrict(update, FULL) is update
    assert changed_from("owner", "ada")(update)


@pytest.mark.parametrize("op", ["c", "r"])
def test_creates_and_reads_are_never_touched(op: Any) -> None:
    change = make_change(op, ACCOUNTS, after=FULL_ROW)
    for identity in (DEFAULT, INDEX, NOTHING):
        assert restrict(change, identity) is change


# -- USING INDEX: the index's columns


def test_index_delete_keeps_the_index_columns_and_drops_a_stand_in_key() -> None:
    badges = "public.badges"
    before = {"id": 0, "code": "gold-1", "label": ""}
    change = restrict(delete(before, badges, key={"id": 0}), INDEX)
    assert dict(change.before or {}) == {"code": "gold-1"}
    assert change.old("code") == "gold-1"
    assert dict(change.key) == {}  # Debezium took the key from the old row: not sent
    with pytest.raises(ColumnWithheld) as caught:
        change.old("label")
    assert caught.value.hint == (
        "add label to the replica identity index badges_code, "
        "or run 'ALTER TABLE public.badges REPLICA IDENTITY FULL' so old rows carry every column"
    )
    with pytest.raises(ColumnWithheld):
        change.old("id")


# -- NOTHING, and DEFAULT without a primary key: no column


@pytest.mark.parametrize("identity", [NOTHING, NO_PRIMARY_KEY])
def test_no_identity_columns_withholds_everything(identity: ReplicaIdentity) -> None:
    change = restrict(delete(KEY_ONLY, key={}), identity)
    assert dict(change.before or {}) == {}
    assert change.withheld == set(KEY_ONLY)
    assert dict(change.row) == {}
    with pytest.raises(ColumnWithheld) as caught:
        change.old("id")
    assert caught.value.hint == FIX
    assert "the source sent no column" in caught.value.message


# -- TOAST: a value filled from a stand-in goes back to UNCHANGED


def test_a_toasted_value_filled_from_a_key_only_image_is_unchanged_again() -> None:
    columns = [dbz.int64("id"), dbz.text("body"), dbz.int32("counter")]
    key_fields = [dbz.int64("id")]
    # An update that changed the key of a DEFAULT table, leaving a large body as it was:
    # the old row carries the key; the new row the placeholder for body.
    key, value = dbz.record(
        "u",
        "docs",
        before={"id": 1, "body": "", "counter": 0},
        after={"id": 2, "body": dbz.PLACEHOLDER, "counter": 5},
        columns=columns,
        key_fields=key_fields,
    )
    decoded = decode_record(value, topic=dbz.topic("docs"), key=key)
    assert isinstance(decoded, Change)
    assert decoded.new("body") == ""  # decoding filled it from Debezium's stand-in
    change = restrict(decoded, DEFAULT)
    assert change.new("body") is UNCHANGED
    assert change.new("counter") == 5
    assert dict(change.before or {}) == {"id": 1}


def test_a_toasted_value_the_before_image_really_carried_stays_filled() -> None:
    before = {"id": 1, "body": "long text", "counter": 0}
    change = make_change("u", "public.docs", before=before, after={**before, "counter": 1})
    filled = Change(**{**_fields(change), "toasted": frozenset({"body"})})
    assert restrict(filled, FULL).new("body") == "long text"


def _fields(change: Change) -> dict[str, Any]:
    return {name: getattr(change, name) for name in Change.__dataclass_fields__}


# -- the record's key, when the identity is not looked up


def test_the_record_key_identity_trusts_the_key_only_and_says_how_to_learn_more() -> None:
    change = delete(FULL_ROW)
    identity = key_identity(change, "transformer.identity_lookup is off")
    assert identity.columns == ("id",)
    cut = restrict(change, identity)
    assert dict(cut.before or {}) == {"id": 1}
    with pytest.raises(ColumnWithheld) as caught:
        cut.old("owner")
    assert "transformer.identity_lookup is off" in caught.value.message
    assert "identity_lookup on" in (caught.value.hint or "")


# -- contradictions


@pytest.mark.parametrize(
    ("identity", "change", "expected"),
    [
        (FULL, make_change("u", ACCOUNTS, before=None, after=FULL_ROW), True),
        (FULL, make_change("d", ACCOUNTS, before=FULL_ROW), False),
        (DEFAULT, make_change("u", ACCOUNTS, before=None, after=FULL_ROW), False),
        (DEFAULT, make_change("d", ACCOUNTS, before=KEY_ONLY), False),
        # an update that kept its key yet carried an old row: the table sends old rows now
        (DEFAULT, make_change("u", ACCOUNTS, before=FULL_ROW, after=FULL_ROW), True),
        (DEFAULT, make_change("u", ACCOUNTS, before=KEY_ONLY, after={**FULL_ROW, "id": 9}), False),
        (DEFAULT, make_change("d", ACCOUNTS, before={"code": "x"}), True),  # key column absent
        (NOTHING, make_change("d", ACCOUNTS, before=KEY_ONLY), True),
        (DEFAULT, make_change("c", ACCOUNTS, after=FULL_ROW), False),
    ],
)
def test_what_contradicts_a_cached_identity(
    identity: ReplicaIdentity, change: Change, expected: bool
) -> None:
    assert contradicts(identity, change) is expected


# -- the catalogue: lazy, cached, refreshed


class FakeCatalogue:
    """A source catalogue whose identities the test changes; counts the queries."""

    def __init__(self, identities: dict[str, ReplicaIdentity]) -> None:
        self.identities = identities
        self.asked: list[list[str]] = []
        self.databases: list[str] = []
        self.down = False

    def __call__(self, database: str, tables: Collection[str]) -> Mapping[str, ReplicaIdentity]:
        if self.down:
            raise SourceUnavailable("connection refused", hint="check the source.* settings")
        self.asked.append(sorted(tables))
        self.databases.append(database)
        return {t: self.identities[t] for t in tables if t in self.identities}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def catalogue(
    identities: dict[str, ReplicaIdentity], refresh_s: float = 60.0
) -> tuple[IdentityCatalog, FakeCatalogue, Clock]:
    fake, clock = FakeCatalogue(identities), Clock()
    return (
        IdentityCatalog(fake, refresh_s=refresh_s, database="t", clock=clock),
        fake,
        clock,
    )


def test_a_table_is_looked_up_when_first_seen_then_cached() -> None:
    cat, fake, _ = catalogue({ACCOUNTS: DEFAULT})
    insert = make_change("c", ACCOUNTS, after=FULL_ROW)
    assert cat.restrict(insert) is insert
    assert fake.asked == []  # creates need no identity
    assert cat.restrict(delete(KEY_ONLY)).withheld == {"customer_ref", "owner", "active", "note"}
    cat.restrict(delete(KEY_ONLY))
    assert fake.asked == [[ACCOUNTS]]


def test_after_the_refresh_period_the_identity_is_read_again() -> None:
    cat, fake, clock = catalogue({ACCOUNTS: DEFAULT}, refresh_s=60)
    assert cat.restrict(delete(KEY_ONLY)).withheld
    fake.identities[ACCOUNTS] = FULL  # ALTER TABLE ... REPLICA IDENTITY FULL
    clock.now += 59
    assert cat.restrict(delete(FULL_ROW)).withheld  # still trusted: within the period
    clock.now += 1
    change = delete(FULL_ROW)
    assert cat.restrict(change) is change
    assert len(fake.asked) == 2


def test_stale_entries_are_read_together() -> None:
    ledgers = "public.ledgers"
    cat, fake, clock = catalogue({ACCOUNTS: DEFAULT, ledgers: FULL}, refresh_s=60)
    cat.restrict(delete(KEY_ONLY))
    cat.restrict(delete(FULL_ROW, ledgers))
    clock.now += 61
    cat.restrict(delete(KEY_ONLY))
    assert fake.asked[-1] == [ACCOUNTS, ledgers]
    cat.restrict(delete(FULL_ROW, ledgers))
    assert len(fake.asked) == 3


def test_each_change_is_looked_up_in_the_database_it_was_captured_from() -> None:
    cat, fake, _ = catalogue({ACCOUNTS: DEFAULT})
    cat.prepare([ACCOUNTS])
    cat.restrict(delete(KEY_ONLY))  # no database named: the settings' database
    elsewhere = Change(**{**_fields(delete(KEY_ONLY)), "database": "it_scratch"})
    cat.restrict(elsewhere)
    cat.restrict(elsewhere)
    assert fake.databases == ["t", "it_scratch"]


def test_a_record_that_contradicts_the_cache_is_judged_by_a_fresh_read() -> None:
    cat, fake, clock = catalogue({ACCOUNTS: FULL})
    cat.restrict(delete(FULL_ROW))
    fake.identities[ACCOUNTS] = DEFAULT  # ALTER TABLE ... REPLICA IDENTITY DEFAULT
    clock.now += 2
    update = make_change("u", ACCOUNTS, before=None, after=FULL_ROW)  # no old row: not FULL
    cat.restrict(update)
    assert len(fake.asked) == 2
    assert cat.restrict(delete(KEY_ONLY)).withheld  # the next delete is cut at once


def test_contradictions_are_read_again_at_most_once_a_second() -> None:
    cat, fake, clock = catalogue({ACCOUNTS: FULL})
    update = make_change("u", ACCOUNTS, before=None, after=FULL_ROW)
    cat.restrict(update)  # first read; contradicted at once, but just read
    cat.restrict(update)
    assert len(fake.asked) == 1
    clock.now += 1
    cat.restrict(update)
    cat.restrict(update)
    assert len(fake.asked) == 2


def test_a_table_the_catalogue_lacks_trusts_the_record_key_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cat, _, _ = catalogue({})
    change = cat.restrict(delete(FULL_ROW))
    assert dict(change.before or {}) == {"id": 1}
    with pytest.raises(ColumnWithheld) as caught:
        change.old("customer_ref")
    assert "not found in database t" in caught.value.message
    cat.restrict(delete(FULL_ROW))
    warnings = [r for r in caplog.records if "is not a table of database t" in r.getMessage()]
    assert len(warnings) == 1


def test_with_the_lookup_off_only_the_record_key_is_trusted() -> None:
    cat = IdentityCatalog.record_only()
    change = cat.restrict(delete(FULL_ROW))
    assert dict(change.before or {}) == {"id": 1}
    assert change.identity is not None and change.identity.assumed
    update = make_change("u", ACCOUNTS, before=FULL_ROW, after={**FULL_ROW, "owner": "bob"})
    with pytest.raises(BeforeImageMissing) as caught:
        changed("owner")(cat.restrict(update))
    assert "identity_lookup" in (caught.value.hint or "")


def test_a_source_unreachable_at_start_is_a_config_error_naming_the_settings() -> None:
    cat, fake, _ = catalogue({ACCOUNTS: DEFAULT})
    fake.down = True
    with pytest.raises(ConfigError) as caught:
        cat.prepare([ACCOUNTS])
    err = caught.value
    assert err.exit_code == 78
    assert "replica identity" in err.message
    assert "CDCFLOW_SOURCE__HOST" in (err.hint or "")
    assert "CDCFLOW_TRANSFORMER__IDENTITY_LOOKUP=false" in (err.hint or "")


def test_the_catalogue_query_of_an_unreachable_source_raises_source_unavailable() -> None:
    source = load_settings(source={"port": 1, "password": "x"}).source  # nothing listens on 1
    with pytest.raises(SourceUnavailable) as caught:
        catalog_lookup(source)("shop", [ACCOUNTS])
    assert "localhost:1" in caught.value.message
    assert "CDCFLOW_SOURCE__PORT" in (caught.value.hint or "")


def test_prepare_reads_the_domain_tables_in_one_query() -> None:
    cat, fake, _ = catalogue({ACCOUNTS: DEFAULT, "public.ledgers": FULL})
    cat.prepare(["public.ledgers", ACCOUNTS, ACCOUNTS])
    assert fake.asked == [[ACCOUNTS, "public.ledgers"]]
    cat.restrict(delete(KEY_ONLY))
    assert len(fake.asked) == 1


def test_a_source_gone_later_keeps_the_cached_identity_and_retries_unknown_tables() -> None:
    cat, fake, clock = catalogue({ACCOUNTS: DEFAULT})
    cat.restrict(delete(KEY_ONLY))
    fake.down = True
    clock.now += 120
    assert cat.restrict(delete(KEY_ONLY)).withheld  # the stale entry still holds
    with pytest.raises(SourceUnavailable):
        cat.restrict(delete(FULL_ROW, "public.ledgers"))  # never read: the batch waits
    fake.down = False
    clock.now += 1
    cat.restrict(delete(KEY_ONLY))
    assert fake.asked == [[ACCOUNTS]]  # asked again only after a few seconds
    clock.now += 5
    cat.restrict(delete(KEY_ONLY))
    assert fake.asked[-1] == [ACCOUNTS]
    assert len(fake.asked) == 2


def test_the_settings_choose_the_catalogue() -> None:
    fake = FakeCatalogue({ACCOUNTS: DEFAULT})
    on = identity_catalog(load_settings(transformer={"identity_refresh_s": 5}), fake)
    assert on.enabled and on.refresh_s == 5
    off = identity_catalog(load_settings(transformer={"identity_lookup": False}), fake)
    assert not off.enabled
    off.restrict(delete(KEY_ONLY))
    assert fake.asked == []


# -- mapping errors and dead letters name table, column and fix


IDENTITY_DOMAIN = "tests.domains.identity"
IDENT_ACCOUNTS = "ident.accounts"
ACCOUNT_COLUMNS = [
    dbz.int64("id"),
    dbz.int32("customer_ref"),
    dbz.text("owner"),
    dbz.boolean("active"),
    dbz.text("note", optional=True),
]
IDENT_FIX = "run 'ALTER TABLE ident.accounts REPLICA IDENTITY FULL' so old rows carry every column"


def test_a_rule_reading_a_withheld_column_fails_into_a_mapping_error_naming_it() -> None:
    rules = load_domain(IDENTITY_DOMAIN).rules
    change = restrict(delete(KEY_ONLY, IDENT_ACCOUNTS), DEFAULT)
    with pytest.raises(MappingError) as caught:
        map_change(rules, change)
    err = caught.value
    assert (err.table, err.column, err.hint) == (IDENT_ACCOUNTS, "customer_ref", IDENT_FIX)
    assert "account_closed" in err.reason
    assert "ColumnWithheld" in err.reason and "'customer_ref' was not sent" in err.reason
    assert "hint:" not in err.reason  # the hint has a field (and a header) of its own


def test_a_predicate_reading_a_withheld_column_names_it_too() -> None:
    rules = Rules("t")
    rules.on(ACCOUNTS, ops="d", when=changed_from("owner", "ada"))(lambda c: None)
    with pytest.raises(MappingError) as caught:
        map_change(rules, restrict(delete(KEY_ONLY), DEFAULT))
    assert (caught.value.table, caught.value.column, caught.value.hint) == (
        ACCOUNTS,
        "owner",
        FIX,
    )


def _dead_letter_headers(rules: Rules, change: Change) -> dict[str, Any]:
    """The headers of the dead letter that mapping ``change`` with ``rules`` makes."""
    with pytest.raises(MappingError) as caught:
        map_change(rules, change)
    error = caught.value.found_at("cdc", 0, 3, key=b"k", value=b"v")
    record = dead_letter("dlq", error, timestamp_ms=1, transformer="t-0")
    return dict(record.headers)


def test_dead_letter_headers_name_table_column_and_fix() -> None:
    change = restrict(delete(KEY_ONLY, IDENT_ACCOUNTS), DEFAULT)
    headers = _dead_letter_headers(load_domain(IDENTITY_DOMAIN).rules, change)
    assert headers["cdcflow.dlq.table"] == b"ident.accounts"
    assert headers["cdcflow.dlq.column"] == b"customer_ref"
    assert headers["cdcflow.dlq.error.hint"] == IDENT_FIX.encode()
    assert headers["cdcflow.dlq.error.class"] == b"MappingError"


def test_a_rule_error_that_names_no_column_writes_no_column_header() -> None:
    rules = Rules("t")
    rules.on(ACCOUNTS, ops="d")(lambda c: 1 / 0)
    headers = _dead_letter_headers(rules, delete(FULL_ROW))
    assert headers["cdcflow.dlq.table"] == ACCOUNTS.encode()
    assert "cdcflow.dlq.column" not in headers


# -- the transformer: Debezium records in, no stand-in value out


def _account_delete(offset: int, account_id: int) -> FakeMessage:
    before = {**KEY_ONLY, "id": account_id}  # what Debezium writes under DEFAULT
    key, value = dbz.record(
        "d",
        "accounts",
        before=before,
        columns=ACCOUNT_COLUMNS,
        key_fields=[dbz.int64("id")],
        schema="ident",
        lsn=1000 + offset,
    )
    return FakeMessage("it.ident.accounts", 0, offset, key, value)


def _transformer(lookup: FakeCatalogue | None) -> Transformer:
    settings = load_settings()
    rules = load_domain(IDENTITY_DOMAIN).rules
    identities = IdentityCatalog(lookup) if lookup is not None else None
    events = discover_events([IDENTITY_DOMAIN])
    return Transformer(settings, rules, events, FakeSerializer(), identities=identities)  # type: ignore[arg-type]


def test_the_transformer_dead_letters_a_key_only_read_and_maps_the_key_only_rule() -> None:
    t = _transformer(FakeCatalogue({IDENT_ACCOUNTS: DEFAULT}))
    res = t.process([_account_delete(0, 1), _account_delete(1, 2)])  # type: ignore[list-item]
    dead = [r for r in res.out if r.topic == t.cfg.dead_letter_topic]
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["cdcflow.dlq.original.offset"] == b"0"  # account 1: odd, reads customer_ref
    assert headers["cdcflow.dlq.table"] == b"ident.accounts"
    assert headers["cdcflow.dlq.column"] == b"customer_ref"
    assert headers["cdcflow.dlq.error.hint"] == IDENT_FIX.encode()
    assert res.produced == {"AccountRemoved": 1}  # account 2: the key-only rule mapped
    assert res.dead_lettered == {"map": 1}
    assert res.records == res.dead_lettered.total() + sum(res.mapped.values())


def test_without_a_catalogue_the_stand_in_value_would_have_been_mapped() -> None:
    """The fault the catalogue prevents, shown: Debezium's 0 becomes an event field."""
    t = _transformer(None)
    captured: list[Any] = []
    t.serializer.serialize = lambda event, topic: captured.append(event) or b""  # type: ignore[method-assign]
    t.process([_account_delete(0, 1)])  # type: ignore[list-item]
    closed = [e for e in captured if isinstance(e, AccountClosed)]
    assert [e.customer_ref for e in closed] == [0]


def test_a_source_outage_is_not_a_dead_letter() -> None:
    fake = FakeCatalogue({IDENT_ACCOUNTS: DEFAULT})
    fake.down = True
    t = _transformer(fake)
    with pytest.raises(SourceUnavailable):
        t.process([_account_delete(0, 2)])  # type: ignore[list-item]


def test_the_batch_waits_out_a_source_outage_and_is_then_processed() -> None:
    class FlakyCatalogue(FakeCatalogue):
        calls = 0

        def __call__(self, database: str, tables: Collection[str]) -> Mapping[str, Any]:
            self.calls += 1
            self.down = self.calls == 1  # the first query finds the database down
            return super().__call__(database, tables)

    flaky = FlakyCatalogue({IDENT_ACCOUNTS: DEFAULT})
    t = _transformer(flaky)
    res = t.process_with_retry([_account_delete(0, 1)], threading.Event())  # type: ignore[list-item]
    assert flaky.calls == 2
    assert res is not None
    assert res.dead_lettered == {"map": 1}  # cut and dead-lettered, not lost to the outage
    assert dict(res.out[0].headers)["cdcflow.dlq.column"] == b"customer_ref"


def test_build_transformer_reads_the_domain_tables_through_an_injected_lookup() -> None:
    fake = FakeCatalogue({IDENT_ACCOUNTS: DEFAULT})
    t = build_transformer(load_settings(), domain=IDENTITY_DOMAIN, identity_lookup=fake)
    assert fake.asked == [["ident.accounts", "ident.badges", "ident.ledgers"]]
    assert fake.databases == ["shop"]  # source.database
    assert t.identities is not None and t.identities.enabled
    fake.down = True
    with pytest.raises(ConfigError):
        build_transformer(load_settings(), domain=IDENTITY_DOMAIN, identity_lookup=fake)
