"""A test domain for the integration tests of type fidelity and dead letters.

``schema.sql`` is its source database (the schema ``fidelity``), ``events`` its
domain events, ``mappings`` its rules. Every test that runs it creates a
database of its own from ``schema.sql`` and sets ``_FidelityEvent.__domain__``
to a name of its own, so that concurrent runs share no table, topic or subject.
"""
