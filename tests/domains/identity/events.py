"""The identity domain's events: accounts opened and closed, ledgers, badges."""

from typing import ClassVar

from pydantic import Field

from pipeline.events import DomainEvent

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "AccountRemoved",
    "BadgeRetired",
    "LedgerClosed",
    "LedgerRenamed",
]


class _IdentityEvent(DomainEvent):
    __namespace__: ClassVar[str] = "cdcflow.it.identity"
    # The first part of every topic of this domain; a test run sets one of its own.
    __domain__: ClassVar[str] = "identity"


class _AccountEvent(_IdentityEvent):
    __aggregate__: ClassVar[str] = "account"
    __aggregate_id__: ClassVar[str] = "account_id"

    account_id: int = Field(description="the account's key")


class AccountOpened(_AccountEvent):
    """An account row was inserted."""

    customer_ref: int = Field(description="the customer the account belongs to")
    owner: str


class AccountClosed(_AccountEvent):
    """An account with an odd id was deleted; carries its customer from the old row."""

    customer_ref: int = Field(description="the customer the account belonged to (old row)")


class AccountRemoved(_AccountEvent):
    """An account was deleted; carries only its key."""


class _LedgerEvent(_IdentityEvent):
    __aggregate__: ClassVar[str] = "ledger"
    __aggregate_id__: ClassVar[str] = "ledger_id"

    ledger_id: int = Field(description="the ledger's key")


class LedgerClosed(_LedgerEvent):
    """A ledger was deleted; carries its old row."""

    customer_ref: int
    owner: str
    note: str | None = None


class LedgerRenamed(_LedgerEvent):
    """A ledger's owner changed."""

    old_owner: str
    new_owner: str


class BadgeRetired(_IdentityEvent):
    """A badge was deleted; carries its code, the column of its identity index."""

    __aggregate__: ClassVar[str] = "badge"
    __aggregate_id__: ClassVar[str] = "code"

    code: str = Field(description="the badge's code (unique)")
