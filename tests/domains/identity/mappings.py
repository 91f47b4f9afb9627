"""How the identity tables' row changes become events.

=====================  ==========================================================
row change             event
=====================  ==========================================================
accounts insert        AccountOpened
accounts delete        AccountRemoved (reads the key only); for an odd id also
                       AccountClosed, which reads the old ``customer_ref``: under
                       REPLICA IDENTITY DEFAULT the source never sends it, so the
                       change is dead-lettered, never mapped with Debezium's 0
ledgers delete         LedgerClosed, from the FULL old row
ledgers update         LedgerRenamed when the owner changed (old and new owner)
badges delete          BadgeRetired, from the old ``code`` (the identity index)
badges update          a rule whose predicate needs the old ``label``, which the
                       USING INDEX identity never sends: dead-lettered
anything else          skipped: no rule matches
=====================  ==========================================================
"""

from __future__ import annotations

from pipeline.cdc import Change
from pipeline.mapping import Rules, changed, changed_from, where
from tests.domains.identity.events import (
    AccountClosed,
    AccountOpened,
    AccountRemoved,
    BadgeRetired,
    LedgerClosed,
    LedgerRenamed,
)

__all__ = ["rules"]

rules = Rules("identity")


@rules.on("ident.accounts", ops="cr", reads=("id", "customer_ref", "owner"))
def account_opened(change: Change) -> AccountOpened:
    return AccountOpened(
        account_id=change.new("id"),
        customer_ref=change.new("customer_ref"),
        owner=change.new("owner"),
    )


@rules.on("ident.accounts", ops="d", reads=("id",))
def account_removed(change: Change) -> AccountRemoved:
    return AccountRemoved(account_id=change.old("id"))


@rules.on(
    "ident.accounts",
    ops="d",
    when=where(lambda c: c.old("id") % 2 == 1, "odd id"),
    reads=("id", "customer_ref"),
)
def account_closed(change: Change) -> AccountClosed:
    return AccountClosed(account_id=change.old("id"), customer_ref=change.old("customer_ref"))


@rules.on("ident.ledgers", ops="d", reads=("id", "customer_ref", "owner", "note"))
def ledger_closed(change: Change) -> LedgerClosed:
    return LedgerClosed(
        ledger_id=change.old("id"),
        customer_ref=change.old("customer_ref"),
        owner=change.old("owner"),
        note=change.old("note"),
    )


@rules.on("ident.ledgers", ops="u", when=changed("owner"), reads=("id", "owner"))
def ledger_renamed(change: Change) -> LedgerRenamed:
    return LedgerRenamed(
        ledger_id=change.new("id"), old_owner=change.old("owner"), new_owner=change.new("owner")
    )


@rules.on("ident.badges", ops="d", reads=("code",))
def badge_retired(change: Change) -> BadgeRetired:
    return BadgeRetired(code=change.old("code"))


@rules.on("ident.badges", ops="u", when=changed_from("label", "gold"), reads=("id", "label"))
def badge_relabelled(change: Change) -> None:
    return None  # never reached: the old label is not sent
