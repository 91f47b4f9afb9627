"""The bundled example domain: a small online shop.

``schema.sql`` is its source database; ``events`` its domain events;
``mappings`` (with ``rules.yaml``) the rules that turn row changes into those
events. Load it with ``load_domain("pipeline.domains.shop")``.
"""
