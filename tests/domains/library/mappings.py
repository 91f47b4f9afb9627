"""How the library's row changes become its domain events.

==========================  ====================  ====================  ==============
row change                  condition             event                 where
==========================  ====================  ====================  ==============
members insert / snapshot                         MemberJoined          here
members update                                    MemberProfileUpdated  here
members delete                                    MemberLeft            rules.yaml
fines insert / snapshot                           FineIssued            rules.yaml
fines delete                                      FineWaived            here
books insert / snapshot                           BookAdded             here
books delete                                      BookWithdrawn         rules.yaml
book_tags insert / snapshot                       BookTagged            rules.yaml
book_tags delete                                  BookUntagged          rules.yaml
loans insert / snapshot                           LoanOpened            rules.yaml
loans update                status -> returned    LoanReturned          here
loan_renewals insert / snap                       LoanRenewed           rules.yaml
loan_renewals delete                              RenewalCancelled      rules.yaml
==========================  ====================  ====================  ==============

Every other change (fines and books updates, loans updates of other columns) is
skipped as "no matching rule".

What the rules need from the source, by replica identity:

- ``FineWaived`` reads the deleted fine's member and amount from the before
  image. ``fines`` keeps PostgreSQL's default identity, whose delete carries the
  key only: the rule cannot be served, and cdcflow dead-letters the delete
  naming the column and the fix, rather than waive an amount of 0.
- ``MemberLeft``, ``BookWithdrawn`` and ``RenewalCancelled`` read key columns
  only, which every identity carries.
- ``LoanReturned`` compares the old status with the new one, and
  ``BookUntagged`` reads a table without a key: both tables are FULL.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cdc import Change
from pipeline.mapping import Rules, changed_to
from tests.domains.fidelity.mappings import json_text
from tests.domains.library import events
from tests.domains.library.events import (
    BookAdded,
    FineWaived,
    LoanReturned,
    MemberJoined,
    MemberProfileUpdated,
)

__all__ = ["rules"]

rules = Rules("library")


def _json(change: Change, column: str) -> str | None:
    value = change.new(column)
    return None if value is None else json_text(value)


# -- member


@rules.on(
    "public.members",
    ops="cr",
    reads=("id", "email", "full_name", "status", "joined_on", "preferences"),
)
def member_joined(change: Change) -> MemberJoined:
    return MemberJoined(
        member_id=change.new("id"),
        email=change.new("email"),
        name=change.new("full_name"),
        status=change.new("status"),
        joined_on=change.new("joined_on"),
        preferences=_json(change, "preferences"),
    )


@rules.on("public.members", ops="u", reads=("id", "email", "full_name", "status", "preferences"))
def member_profile_updated(change: Change) -> MemberProfileUpdated:
    # The row as it is now: no old value is needed, so the default identity serves.
    return MemberProfileUpdated(
        member_id=change.new("id"),
        email=change.new("email"),
        name=change.new("full_name"),
        status=change.new("status"),
        preferences=_json(change, "preferences"),
    )


@rules.on("public.fines", ops="d", reads=("id", "member_id", "amount"))
def fine_waived(change: Change) -> FineWaived:
    return FineWaived(
        member_id=change.old("member_id"),
        fine_id=change.old("id"),
        amount=change.old("amount"),
    )


# -- book


@rules.on(
    "public.books",
    ops="cr",
    reads=("id", "isbn", "title", "authors", "published_on", "price"),
)
def book_added(change: Change) -> BookAdded:
    return BookAdded(
        book_id=change.new("id"),
        isbn=change.new("isbn"),
        title=change.new("title"),
        authors=json_text(change.new("authors")),
        published_on=change.new("published_on"),
        price=change.new("price"),
    )


# -- loan


@rules.on(
    "public.loans",
    ops="u",
    when=changed_to("status", "returned"),
    reads=("id", "status", "due_on", "returned_at"),
)
def loan_returned(change: Change) -> LoanReturned:
    returned_at = change.new("returned_at") or change.committed_at
    late = (returned_at.date() - change.new("due_on")).days
    return LoanReturned(
        loan_id=change.new("id"), returned_at=returned_at, days_overdue=max(late, 0)
    )


rules.load_yaml(Path(__file__).with_name("rules.yaml"), events=events)
