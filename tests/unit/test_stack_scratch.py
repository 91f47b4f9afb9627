"""A shipped connector config re-pointed at a scratch database (pipeline/stack/scratch.py)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.connect import parse_connector_file
from pipeline.stack.scratch import repointed

SHOP = Path(__file__).resolve().parents[2] / "connectors" / "shop-postgres.yaml"


def test_names_and_routing_follow_the_new_prefix() -> None:
    shipped = dict(parse_connector_file(SHOP).config)
    config = repointed(shipped, database="scratch_db", prefix="bench7", slot="bench7_slot")

    assert config["database.dbname"] == "scratch_db"
    assert config["topic.prefix"] == "bench7"
    assert config["slot.name"] == config["publication.name"] == "bench7_slot"
    # The router that merges orders, order_lines and payments names the new topics.
    assert (
        config["transforms.order.topic.regex"] == r"bench7\.public\.(orders|order_lines|payments)"
    )
    assert config["transforms.order.topic.replacement"] == "bench7.public.order_aggregate"
    assert not [k for k, v in config.items() if "shop." in v or r"shop\." in v]
    # Value handling is untouched.
    for key in ("value.converter", "decimal.handling.mode", "time.precision.mode"):
        if key in shipped:
            assert config[key] == shipped[key]
    # The shipped dict itself is not changed.
    assert shipped["topic.prefix"] == "shop"


def test_dropped_keys_are_left_out() -> None:
    shipped = dict(parse_connector_file(SHOP).config)
    config = repointed(
        shipped, database="d", prefix="p", slot="s", drop=re.compile(r"^(transforms|heartbeat\.)")
    )
    assert not [k for k in config if k.startswith(("transforms", "heartbeat."))]
    assert any(k.startswith("transforms") for k in shipped)
    assert config["topic.prefix"] == "p"
