"""A small domain written from scratch for the describe / routing tests: accounts and loans.

``accounts`` and ``account_limits`` feed the ``account`` aggregate (ids from
``accounts.id`` and ``account_limits.account_id``); ``loans`` (keyed by loan
id) feeds the ``member`` aggregate by ``member_id``; ``audit`` is ignored.
Some rules are written so that what they read cannot be told.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pipeline.cdc import Change
from pipeline.events import DomainEvent
from pipeline.mapping import Rules, changed, changed_to, where
from pipeline.mapping.describe import DomainDescription, describe_domain

__all__ = ["bank_description", "rules", "shop_description"]


class _BankEvent(DomainEvent):
    __domain__: ClassVar[str] = "bank"
    __namespace__: ClassVar[str] = "bank.events"


class _AccountEvent(_BankEvent):
    __aggregate__: ClassVar[str] = "account"
    __aggregate_id__: ClassVar[str] = "account_id"


class AccountOpened(_AccountEvent):
    account_id: int
    owner: str


class AccountClosed(_AccountEvent):
    account_id: int
    last_owner: str


class OwnerChanged(_AccountEvent):
    account_id: int
    old_owner: str


class LimitSet(_AccountEvent):
    account_id: int
    amount: int


class LoanTaken(_BankEvent):
    __aggregate__: ClassVar[str] = "member"
    __aggregate_id__: ClassVar[str] = "member_id"
    member_id: int
    loan_id: int


rules = Rules("bank")
rules.ignore("public.audit")


@rules.on("public.accounts", ops="cr")
def account_opened(change: Change) -> AccountOpened:
    return AccountOpened(account_id=change.new("id"), owner=change.new("owner"))


@rules.on("public.accounts", ops="d")
def account_closed(change: Change) -> list[AccountClosed]:
    return [AccountClosed(account_id=change.row["id"], last_owner=_old_owner(change))]


def _old_owner(change: Change) -> str:
    return str(change.old("owner"))


@rules.on("public.accounts", ops="u", when=changed("owner") & changed_to("status", "open"))
def owner_changed(change: Change) -> OwnerChanged | None:
    return OwnerChanged(account_id=change.new("id"), old_owner=change.before["owner"])


@rules.on("public.account_limits", ops="cru", when=where(lambda c: c.op != "t"))
def limit_set(change: Change) -> LimitSet:
    return LimitSet(account_id=change.new("account_id"), amount=change.new("amount"))


@rules.on("public.loans", ops="c", aggregate_id_from="member_id")
def loan_taken(change: Change) -> Iterator[LoanTaken]:
    yield _loan(change.new("member_id"), change.new("id"))


def _loan(member: int, loan: int) -> LoanTaken:
    return LoanTaken(member_id=member, loan_id=loan)


@rules.on("public.loans", ops="u")
def loan_unannotated(change):  # type: ignore[no-untyped-def]
    return None


def bank_description() -> DomainDescription:
    """This domain, described."""
    from pipeline.contracts.catalog import discover_events

    return describe_domain(rules, discover_events([__name__]))


def shop_description() -> DomainDescription:
    """The bundled shop, described, for comparison."""
    from pipeline.connect.domain import load_description

    return load_description("pipeline.domains.shop")
