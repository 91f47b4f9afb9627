"""Accounts and their limits: one aggregate fed by two tables, written as a new user would.

``accounts`` and ``account_limits`` both carry the account's id and feed the
``account`` aggregate (events on ``<domain>.account.events``). With Debezium's
default routing (``connector.yaml``: no transforms) their changes land on two
CDC topics, and nothing keeps an account's events in commit order; cdcflow
refuses that connector until its routing is derived (``routing: derive``).
"""
