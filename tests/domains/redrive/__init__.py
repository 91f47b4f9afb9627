"""A test domain for redriving dead letters: a mapping that fails for some rows, then fixed.

``schema.sql`` is its source database (the schema ``redrive``), ``events`` its
events, ``mappings`` the rules as first deployed (they fail for some rows),
``fixed`` the rules after the fix (``--domain tests.domains.redrive.fixed``).
A test run sets ``_RedriveEvent.__domain__`` to a name of its own.
"""
