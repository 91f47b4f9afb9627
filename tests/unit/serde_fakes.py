"""A schema registry that knows every schema under one id, for serializer tests without services."""

from __future__ import annotations

SCHEMA_ID = 77


class _Registered:
    schema_id = SCHEMA_ID
    version = 1
    guid = None


class FixedIdRegistry:
    """Answers every schema lookup with :data:`SCHEMA_ID` (what ``EventSerializer`` asks of it)."""

    def lookup_schema(self, *args: object, **kwargs: object) -> object:
        return _Registered()
