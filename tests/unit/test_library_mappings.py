"""The library test domain's rules on hand-built changes: every event, its values and its ids.

The library (``tests.domains.library``) is the domain written from scratch for the
"any schema" tests; the integration tests run it on the real stack. Here its
rules meet :class:`~pipeline.cdc.Change` values built by hand, with the images a
table's replica identity gives: the whole old row under FULL, the key only under
DEFAULT.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from pipeline.cdc import UNCHANGED, Change, Op, SkipReason, decode_record
from pipeline.cdc.identity import ReplicaIdentity, restrict
from pipeline.contracts.catalog import discover_events
from pipeline.domain import load_domain
from pipeline.errors import DecodeError, MappingError
from pipeline.events import DomainEvent
from pipeline.mapping import Mapped, Rules, map_change
from pipeline.mapping.describe import describe_domain
from tests.domains.library import events as ev
from tests.unit import debezium as dbz
from tests.unit.changes import make_change

BOOK = UUID("3d1c2b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
LOAN = UUID("9a8b7c6d-5e4f-4321-8fed-cba987654321")
LENT = datetime(2024, 6, 10, 9, 30, 15, 250000, tzinfo=UTC)
BACK = datetime(2024, 7, 3, 17, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_domain("tests.domains.library").rules


def member(**over: Any) -> dict[str, Any]:
    row = {
        "id": 7,
        "email": "ada@example.org",
        "full_name": "Ada Lovelace",
        "status": "active",
        "joined_on": date(2024, 1, 2),
        "preferences": {"newsletter": True, "language": "en", "limit": Decimal("2.5")},
        "created_at": LENT,
    }
    return {**row, **over}


def fine(**over: Any) -> dict[str, Any]:
    row = {
        "id": 11,
        "member_id": 7,
        "loan_id": LOAN,
        "amount": Decimal("12.50"),
        "reason": "late return",
        "issued_at": BACK,
    }
    return {**row, **over}


def book(**over: Any) -> dict[str, Any]:
    row = {
        "id": BOOK,
        "isbn": "978-0-13-468599-1",
        "title": "The Pragmatic Programmer",
        "authors": ["Hunt", "Thomas"],
        "published_on": date(1999, 10, 20),
        "price": Decimal("39.99"),
    }
    return {**row, **over}


def loan(**over: Any) -> dict[str, Any]:
    row = {
        "id": LOAN,
        "book_id": BOOK,
        "member_id": 7,
        "status": "open",
        "loaned_at": LENT,
        "due_on": date(2024, 7, 1),
        "returned_at": None,
    }
    return {**row, **over}


def renewal(**over: Any) -> dict[str, Any]:
    row = {
        "loan_id": LOAN,
        "renewal_no": 2,
        "renewed_at": LENT,
        "new_due_on": date(2024, 7, 15),
        "note": None,
    }
    return {**row, **over}


RENEWAL_KEY = {"loan_id": LOAN, "renewal_no": 2}


def change(op: Op, table: str, **kw: Any) -> Change:
    return make_change(op, f"public.{table}", **kw)


def events_of(rules: Rules, op: Op, table: str, **kw: Any) -> tuple[DomainEvent, ...]:
    result = map_change(rules, change(op, table, **kw))
    assert isinstance(result, Mapped), result
    return result.events


def only(rules: Rules, op: Op, table: str, **kw: Any) -> DomainEvent:
    (event,) = events_of(rules, op, table, **kw)
    assert event.metadata is not None
    return event


# -- member: members, fines


@pytest.mark.parametrize("op", ["c", "r"])
def test_member_joined(rules: Rules, op: Op) -> None:
    event = only(rules, op, "members", after=member(), snapshot=op == "r")
    assert (
        event.payload()
        == ev.MemberJoined(
            member_id=7,
            email="ada@example.org",
            name="Ada Lovelace",
            status="active",
            joined_on=date(2024, 1, 2),
            preferences='{"newsletter":true,"language":"en","limit":2.5}',
        ).payload()
    )
    assert event.metadata is not None
    assert (event.metadata.aggregate_type, event.metadata.aggregate_id) == ("member", "7")


def test_member_profile_updated_needs_no_old_row(rules: Rules) -> None:
    # REPLICA IDENTITY DEFAULT: an update that keeps the key sends no before image.
    event = only(
        rules,
        "u",
        "members",
        before=None,
        after=member(status="suspended", email="ada@lovelace.org", preferences=None),
    )
    assert isinstance(event, ev.MemberProfileUpdated)
    assert (event.email, event.status, event.preferences) == (
        "ada@lovelace.org",
        "suspended",
        None,
    )


def test_member_left_reads_only_the_key(rules: Rules) -> None:
    event = only(rules, "d", "members", before={"id": 7})
    assert event.payload() == {"member_id": 7}
    assert isinstance(event, ev.MemberLeft)


def test_fine_issued(rules: Rules) -> None:
    event = only(rules, "c", "fines", after=fine())
    assert event.payload() == {
        "member_id": 7,
        "fine_id": 11,
        "loan_id": LOAN,
        "amount": Decimal("12.50"),
        "reason": "late return",
        "issued_at": BACK,
    }
    # the member's aggregate, though the row's key is the fine's own id
    assert event.metadata is not None and event.metadata.aggregate_id == "7"


def test_fine_waived_from_a_full_old_row(rules: Rules) -> None:
    event = only(rules, "d", "fines", before=fine())
    assert event.payload() == {"member_id": 7, "fine_id": 11, "amount": Decimal("12.50")}


def test_fine_waived_from_a_key_only_old_row_is_a_mapping_error(rules: Rules) -> None:
    # What Debezium writes for a delete under REPLICA IDENTITY DEFAULT: the key, and
    # stand-ins for the NOT NULL columns the old row did not carry. Cut to the
    # identity, the rule cannot read the member or the amount: it fails, naming
    # the column and the fix, and never waives a made-up amount of 0.
    stand_ins = fine(member_id=0, loan_id=None, amount=Decimal(0), reason="", issued_at=EPOCH)
    cut = restrict(
        change("d", "fines", before=stand_ins), ReplicaIdentity.from_catalog("d", ["id"])
    )
    with pytest.raises(MappingError, match="member_id") as caught:
        map_change(rules, cut)
    assert (caught.value.table, caught.value.column) == ("public.fines", "member_id")
    assert "ALTER TABLE public.fines REPLICA IDENTITY FULL" in (caught.value.hint or "")
    assert caught.value.topic == "shop.public.fines"  # the record travels with the error


def test_fine_updates_are_skipped(rules: Rules) -> None:
    result = map_change(rules, change("u", "fines", before=None, after=fine(reason="lost")))
    assert not isinstance(result, Mapped) and result.reason is SkipReason.NO_MATCHING_RULE


# -- book: books, book_tags (no primary key)


def test_book_added(rules: Rules) -> None:
    event = only(rules, "r", "books", after=book(), snapshot=True)
    assert event.payload() == {
        "book_id": BOOK,
        "isbn": "978-0-13-468599-1",
        "title": "The Pragmatic Programmer",
        "authors": '["Hunt","Thomas"]',
        "published_on": date(1999, 10, 20),
        "price": Decimal("39.99"),
    }


def test_book_added_with_nulls(rules: Rules) -> None:
    event = only(rules, "c", "books", after=book(published_on=None, price=None, authors=[]))
    assert isinstance(event, ev.BookAdded)
    assert (event.published_on, event.price, event.authors) == (None, None, "[]")


def test_book_withdrawn_reads_only_the_key(rules: Rules) -> None:
    assert only(rules, "d", "books", before={"id": BOOK}).payload() == {"book_id": BOOK}


def test_tags_without_a_key_get_ids_of_their_own(rules: Rules) -> None:
    # book_tags has no primary key: Debezium sends an empty key, and the row is its identity.
    tagged = [
        only(rules, "c", "book_tags", after={"book_id": BOOK, "tag": tag}, key={})
        for tag in ("classic", "software")
    ]
    assert [e.payload() for e in tagged] == [
        {"book_id": BOOK, "tag": "classic"},
        {"book_id": BOOK, "tag": "software"},
    ]
    ids = {e.metadata.event_id for e in tagged if e.metadata}
    assert len(ids) == 2  # same position, same event type: the rows keep them apart
    assert {e.metadata.aggregate_id for e in tagged if e.metadata} == {str(BOOK)}
    untagged = only(rules, "d", "book_tags", before={"book_id": BOOK, "tag": "classic"}, key={})
    assert isinstance(untagged, ev.BookUntagged)
    assert untagged.payload() == {"book_id": BOOK, "tag": "classic"}


# -- loan: loans, loan_renewals (composite key)


def test_loan_opened(rules: Rules) -> None:
    event = only(rules, "c", "loans", after=loan())
    assert event.payload() == {
        "loan_id": LOAN,
        "book_id": BOOK,
        "member_id": 7,
        "loaned_at": LENT,
        "due_on": date(2024, 7, 1),
    }


def test_loan_returned_late(rules: Rules) -> None:
    event = only(
        rules, "u", "loans", before=loan(), after=loan(status="returned", returned_at=BACK)
    )
    assert event.payload() == {"loan_id": LOAN, "returned_at": BACK, "days_overdue": 2}


def test_loan_returned_early_is_not_overdue(rules: Rules) -> None:
    early = datetime(2024, 6, 20, tzinfo=UTC)
    event = only(
        rules, "u", "loans", before=loan(), after=loan(status="returned", returned_at=early)
    )
    assert isinstance(event, ev.LoanReturned) and event.days_overdue == 0


def test_other_loan_updates_are_skipped(rules: Rules) -> None:
    result = map_change(
        rules, change("u", "loans", before=loan(), after=loan(due_on=date(2024, 8, 1)))
    )
    assert not isinstance(result, Mapped) and result.reason is SkipReason.NO_MATCHING_RULE


def test_loan_return_without_the_old_row_is_a_mapping_error(rules: Rules) -> None:
    # The rule compares the old status: without REPLICA IDENTITY FULL there is none.
    with pytest.raises(MappingError, match="REPLICA IDENTITY FULL"):
        map_change(rules, change("u", "loans", before=None, after=loan(status="returned")))


def test_renewals_by_composite_key(rules: Rules) -> None:
    renewed = [
        only(
            rules,
            "c",
            "loan_renewals",
            after=renewal(renewal_no=n),
            key={**RENEWAL_KEY, "renewal_no": n},
        )
        for n in (1, 2)
    ]
    assert [e.payload() for e in renewed] == [
        {
            "loan_id": LOAN,
            "renewal_no": n,
            "renewed_at": LENT,
            "new_due_on": date(2024, 7, 15),
            "note": None,
        }
        for n in (1, 2)
    ]
    assert len({e.metadata.event_id for e in renewed if e.metadata}) == 2
    cancelled = only(rules, "d", "loan_renewals", before=RENEWAL_KEY, key=RENEWAL_KEY)
    assert cancelled.payload() == {"loan_id": LOAN, "renewal_no": 2}
    assert cancelled.metadata is not None and cancelled.metadata.aggregate_id == str(LOAN)


def test_every_event_type_has_a_rule(rules: Rules) -> None:
    events = discover_events(["tests.domains.library"])
    assert {e.__name__ for e in events} == set(ev.__all__) - {"MemberStatus", "Money"}
    description = describe_domain(rules, events)
    emitted = {name for t in description.tables.values() for r in t.rules for name in r.events}
    assert emitted == {e.full_name() for e in events}
    assert {a: dict(info.tables) for a, info in description.aggregates.items()} == {
        "member": {"public.members": "id", "public.fines": "member_id"},
        "book": {"public.books": "id", "public.book_tags": "book_id"},
        "loan": {"public.loans": "id", "public.loan_renewals": "loan_id"},
    }


# -- what Debezium really sends for a key-only old row


BOOK_COLUMNS = [
    dbz.uuid_col("id"),
    dbz.text("isbn"),
    dbz.text("title"),
    dbz.json_col("authors", optional=False),
    dbz.named("published_on", "int32", "io.debezium.time.Date", optional=True),
    dbz.decimal("price", 2, precision=10, optional=True),
]
# A books delete under REPLICA IDENTITY DEFAULT, as Debezium 3.6 wrote it on the
# local stack: the columns the old row did not carry hold the type's default, and
# for a NOT NULL jsonb (or uuid) that default, "", is not a value of the type.
KEY_ONLY_BOOK = {
    "id": str(BOOK),
    "isbn": "",
    "title": "",
    "authors": "",
    "published_on": None,
    "price": None,
}


def decoded_book_delete(before: dict[str, Any]) -> Change:
    key, value = dbz.record(
        "d", "books", before=before, columns=BOOK_COLUMNS, key_fields=[dbz.uuid_col("id")]
    )
    result = decode_record(value, key=key, topic=dbz.topic("books"), partition=0, offset=1)
    assert isinstance(result, Change)
    return result


def test_a_key_only_old_row_decodes_and_its_key_only_rule_maps(rules: Rules) -> None:
    decoded = decoded_book_delete(KEY_ONLY_BOOK)
    assert decoded.before is not None and decoded.before["authors"] is UNCHANGED  # not sent
    cut = restrict(decoded, ReplicaIdentity.from_catalog("d", ["id"]))
    assert dict(cut.before or {}) == {"id": BOOK}
    result = map_change(rules, cut)
    assert isinstance(result, Mapped)
    assert [e.payload() for e in result.events] == [{"book_id": BOOK}]


def test_an_empty_json_text_is_still_an_error_in_a_new_row() -> None:
    key, value = dbz.record(
        "c",
        "books",
        after={**KEY_ONLY_BOOK, "isbn": "x", "title": "y"},
        columns=BOOK_COLUMNS,
        key_fields=[dbz.uuid_col("id")],
    )
    with pytest.raises(DecodeError, match="authors"):
        decode_record(value, key=key, topic=dbz.topic("books"), partition=0, offset=1)
