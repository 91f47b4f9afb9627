"""The library's domain events: what happened to members, books and loans.

Three aggregates, one topic each (``library.member.events``,
``library.book.events``, ``library.loan.events``); every event names its
aggregate's id. Money is exact (``Decimal``, 10 digits, 2 decimals, as in the
source's ``numeric(10,2)``); times are UTC; jsonb columns are carried as JSON text.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from pipeline.events import DomainEvent

__all__ = [
    "BookAdded",
    "BookTagged",
    "BookUntagged",
    "BookWithdrawn",
    "FineIssued",
    "FineWaived",
    "LoanOpened",
    "LoanRenewed",
    "LoanReturned",
    "MemberJoined",
    "MemberLeft",
    "MemberProfileUpdated",
    "MemberStatus",
    "Money",
    "RenewalCancelled",
]

Money = Annotated[Decimal, Field(max_digits=10, decimal_places=2)]
MemberStatus = Literal["active", "suspended", "closed"]


class _LibraryEvent(DomainEvent):
    __namespace__: ClassVar[str] = "cdcflow.it.library"
    # The first part of every topic of this domain; a test run sets one of its own.
    __domain__: ClassVar[str] = "library"


class _MemberEvent(_LibraryEvent):
    __aggregate__: ClassVar[str] = "member"
    __aggregate_id__: ClassVar[str] = "member_id"


class _BookEvent(_LibraryEvent):
    __aggregate__: ClassVar[str] = "book"
    __aggregate_id__: ClassVar[str] = "book_id"


class _LoanEvent(_LibraryEvent):
    __aggregate__: ClassVar[str] = "loan"
    __aggregate_id__: ClassVar[str] = "loan_id"


# -- member: members, fines


class MemberJoined(_MemberEvent):
    """A member was registered (or read by a snapshot)."""

    member_id: int = Field(description="the member's id")
    email: str = Field(description="the member's email address")
    name: str = Field(description="the member's full name")
    status: MemberStatus = Field(description="the member's status when joining")
    joined_on: date = Field(description="the day the member joined")
    preferences: str | None = Field(default=None, description="JSON text, if the member set any")


class MemberProfileUpdated(_MemberEvent):
    """A member's row was updated; the profile as it is now."""

    member_id: int = Field(description="the member's id")
    email: str = Field(description="the member's email address")
    name: str = Field(description="the member's full name")
    status: MemberStatus = Field(description="the member's status")
    preferences: str | None = Field(default=None, description="JSON text")


class MemberLeft(_MemberEvent):
    """A member's row was deleted."""

    member_id: int = Field(description="the member's id")


class FineIssued(_MemberEvent):
    """A member was fined."""

    member_id: int = Field(description="the fined member")
    fine_id: int = Field(description="the fine's id")
    loan_id: UUID | None = Field(default=None, description="the loan the fine is for, if any")
    amount: Money = Field(description="the fine's amount")
    reason: str = Field(description="why the member was fined")
    issued_at: datetime = Field(description="when the fine was issued (UTC)")


class FineWaived(_MemberEvent):
    """A fine was deleted: waived, with the amount it had."""

    member_id: int = Field(description="the member whose fine was waived")
    fine_id: int = Field(description="the fine's id")
    amount: Money = Field(description="the amount waived")


# -- book: books, book_tags


class BookAdded(_BookEvent):
    """A book was added to the catalogue."""

    book_id: UUID = Field(description="the book's id")
    isbn: str = Field(description="the book's ISBN")
    title: str = Field(description="the book's title")
    authors: str = Field(description="JSON text: the list of authors")
    published_on: date | None = Field(default=None, description="publication day, if known")
    price: Money | None = Field(default=None, description="list price, if known")


class BookWithdrawn(_BookEvent):
    """A book was removed from the catalogue."""

    book_id: UUID = Field(description="the book's id")


class BookTagged(_BookEvent):
    """A tag was put on a book."""

    book_id: UUID = Field(description="the tagged book")
    tag: str = Field(description="the tag")


class BookUntagged(_BookEvent):
    """A tag was taken off a book."""

    book_id: UUID = Field(description="the book")
    tag: str = Field(description="the tag taken off")


# -- loan: loans, loan_renewals


class LoanOpened(_LoanEvent):
    """A member borrowed a book."""

    loan_id: UUID = Field(description="the loan's id")
    book_id: UUID = Field(description="the borrowed book")
    member_id: int = Field(description="the borrowing member")
    loaned_at: datetime = Field(description="when the book was lent (UTC)")
    due_on: date = Field(description="the day the book is due back")


class LoanRenewed(_LoanEvent):
    """A loan was renewed."""

    loan_id: UUID = Field(description="the renewed loan")
    renewal_no: int = Field(description="1 for the first renewal, then 2, ...")
    renewed_at: datetime = Field(description="when the loan was renewed (UTC)")
    new_due_on: date = Field(description="the new due day")
    note: str | None = Field(default=None, description="the librarian's note")


class RenewalCancelled(_LoanEvent):
    """A renewal was deleted."""

    loan_id: UUID = Field(description="the loan")
    renewal_no: int = Field(description="the cancelled renewal's number")


class LoanReturned(_LoanEvent):
    """A borrowed book was returned."""

    loan_id: UUID = Field(description="the loan")
    returned_at: datetime = Field(description="when the book came back (UTC)")
    days_overdue: int = Field(description="days after the due day (0 if on time)")
