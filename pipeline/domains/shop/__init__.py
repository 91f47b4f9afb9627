"""The bundled example domain: a small online shop, whole in one package.

- ``schema.sql`` and :mod:`.source` — its source database (schema, seed data);
  :mod:`.workload` — business operations against it, for the demo and the tests.
- :mod:`.events` — its domain events; :mod:`.mappings` (with ``rules.yaml``) —
  the rules that turn row changes into those events.
- :mod:`.order` — the Order aggregate folded from its events;
  :mod:`.projections` — its two read models; :mod:`.demo` and :mod:`.report` —
  what ``cdcflow demo`` runs and shows of them.

``domain`` ties them together: ``cdcflow run --domain pipeline.domains.shop``.
Nothing outside this package imports it; the settings name it once, as the
default domain of a fresh checkout.
"""

from pipeline import Domain
from pipeline.domains.shop import events
from pipeline.domains.shop.demo import ShopDemo
from pipeline.domains.shop.mappings import rules
from pipeline.domains.shop.projections import order_timeline, orders_by_customer

__all__ = ["domain", "projections", "rules"]

projections = [orders_by_customer, order_timeline]

domain = Domain("shop", events=events, rules=rules, projections=projections, demo=ShopDemo())
