"""JSON views of cdcflow's records, as ``-o json`` prints them.

A view names the attributes it shows as they are and adds what it renames or
computes; :func:`attrs` is the first half, so each view lists only its own
choices.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attrs"]


def attrs(obj: object, *names: str) -> dict[str, Any]:
    """``{name: obj.name}`` for each of ``names``, in that order."""
    return {name: getattr(obj, name) for name in names}
