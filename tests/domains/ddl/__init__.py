"""A test domain for source DDL while streaming (``tests/chaos/test_ddl.py``).

``schema.sql`` is its source database (the schema ``ddl``): one table per kind of
``ALTER TABLE`` the test makes while rows are written, and one table no DDL
touches. ``events`` holds its domain events; ``mappings`` (Python rules) and
``rules.yaml`` (declarative rules) its rules. A test run creates a database of
its own from ``schema.sql`` and sets ``_DdlEvent.__domain__`` to a name of its
own, so that concurrent runs share no table, topic or subject.
"""
