"""The account aggregate's events."""

from __future__ import annotations

from typing import ClassVar

from pipeline.events import DomainEvent

__all__ = ["AccountOpened", "LimitChanged", "LimitSet", "OwnerChanged"]


class _AccountsEvent(DomainEvent):
    __domain__: ClassVar[str] = "accounts"
    __namespace__: ClassVar[str] = "accounts.events"
    __aggregate__: ClassVar[str] = "account"
    __aggregate_id__: ClassVar[str] = "account_id"


class AccountOpened(_AccountsEvent):
    account_id: int
    owner: str


class OwnerChanged(_AccountsEvent):
    account_id: int
    owner: str


class LimitSet(_AccountsEvent):
    account_id: int
    limit_id: int
    amount: int


class LimitChanged(_AccountsEvent):
    account_id: int
    limit_id: int
    amount: int
