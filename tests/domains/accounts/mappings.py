"""Row changes of accounts and account_limits -> the account's events."""

from __future__ import annotations

from pipeline.cdc import Change
from pipeline.mapping import Rules, changed

from .events import AccountOpened, LimitChanged, LimitSet, OwnerChanged

__all__ = ["rules"]

rules = Rules("accounts")


@rules.on("public.accounts", ops="cr")
def account_opened(change: Change) -> AccountOpened:
    return AccountOpened(account_id=change.new("id"), owner=change.new("owner"))


@rules.on("public.accounts", ops="u")
def owner_changed(change: Change) -> OwnerChanged:
    return OwnerChanged(account_id=change.new("id"), owner=change.new("owner"))


@rules.on("public.account_limits", ops="cr")
def limit_set(change: Change) -> LimitSet:
    return LimitSet(
        account_id=change.new("account_id"), limit_id=change.new("id"), amount=change.new("amount")
    )


@rules.on("public.account_limits", ops="u", when=changed("amount"))
def limit_changed(change: Change) -> LimitChanged:
    return LimitChanged(
        account_id=change.new("account_id"), limit_id=change.new("id"), amount=change.new("amount")
    )
