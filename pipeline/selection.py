"""Picking declared things by name: connectors, projections (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from pipeline.errors import CdcflowError

__all__ = ["select_named"]

T = TypeVar("T")


def select_named(
    declared: Mapping[str, T],
    names: Iterable[str],
    *,
    error: type[CdcflowError],
    unknown: str,
) -> list[T]:
    """The ``declared`` things ``names`` names, in that order (all of them when it is empty).

    ``unknown`` is the message for names not declared, with ``{}`` where they go; the
    error's hint lists the declared names.

    Raises:
        CdcflowError: of class ``error``, when a name is not declared.
    """
    wanted = list(names)
    if not wanted:
        return list(declared.values())
    missing = [n for n in wanted if n not in declared]
    if missing:
        raise error(
            unknown.format(", ".join(missing)),
            hint=f"declared: {', '.join(sorted(declared)) or 'none'}",
        )
    return [declared[n] for n in wanted]
