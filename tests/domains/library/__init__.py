"""A library, written from scratch as a new cdcflow user would: the "any schema" test domain.

``schema.sql`` is its source database (schema ``public``), ``events`` its domain
events, ``mappings`` (with ``rules.yaml``) its rules and ``connector.yaml`` its
Debezium connector, with Debezium's defaults wherever a user would leave them.

Three aggregates, each fed by two tables: a member (``members``, ``fines``), a
book (``books``, ``book_tags``, the latter without a primary key) and a loan
(``loans``, ``loan_renewals``, the latter with a composite key). Most tables keep
PostgreSQL's default replica identity. Every test that runs it creates a database
of its own from ``schema.sql`` and sets ``_LibraryEvent.__domain__`` to a name of
its own, so that concurrent runs share no table, topic or subject.
"""
