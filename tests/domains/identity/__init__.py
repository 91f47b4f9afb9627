"""A test domain for replica identities: what a before image may and may not give a rule.

``schema.sql`` is its source database (the schema ``ident``): one table of each
replica identity a user meets — DEFAULT (left as created), FULL and USING
INDEX. ``events`` are its domain events, ``mappings`` its rules: delete rules
that read an old non-key column, and rules that read only what the identity
carries. Every test that runs it creates a database of its own from
``schema.sql`` and sets ``_IdentityEvent.__domain__`` to a name of its own.
"""
