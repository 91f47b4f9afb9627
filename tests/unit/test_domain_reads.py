"""What a rule reads: YAML rules fill ``reads``; describe shows what Python rule bodies read."""

from __future__ import annotations

import textwrap
import types

import yaml

from pipeline import Change, DomainEvent, Rules, changed, changed_to, where
from pipeline.domain import load_domain
from pipeline.mapping.describe import describe_domain
from pipeline.mapping.yaml_rules import compile_rules
from pipeline.settings import EXAMPLE_DOMAIN


class BoxShipped(DomainEvent):
    __aggregate__ = "box"
    __aggregate_id__ = "box_id"
    __namespace__ = "depot.events"
    box_id: int
    label: str | None = None


EVENTS = types.ModuleType("box_events")
EVENTS.BoxShipped = BoxShipped  # type: ignore[attr-defined]


def test_yaml_rules_fill_reads_from_fields_and_conditions() -> None:
    rules = Rules("depot")
    text = """
        rules:
          - table: public.boxes
            ops: u
            event: BoxShipped
            when:
              - changed_to: {state: shipped}
            fields:
              box_id: new.id
              label: old.label
    """
    compile_rules(rules, yaml.safe_load(textwrap.dedent(text)), events=EVENTS)
    (rule,) = rules
    assert rule.reads == {"id", "label", "state"}
    (info,) = describe_domain(rules, [BoxShipped]).tables["public.boxes"].rules
    assert info.reads == {"id", "label", "state"} and info.reads_complete


def test_describe_shows_what_a_python_rule_reads_and_flags_a_short_declaration() -> None:
    rules = Rules("depot")

    @rules.on("public.boxes", ops="u", when=changed("state"), reads=("id",))
    def shipped(change: Change) -> BoxShipped:
        return BoxShipped(box_id=change.new("id"), label=change.old("label"))

    @rules.on("public.crates", ops="c")
    def crated(change: Change) -> BoxShipped:
        return BoxShipped(box_id=change.key["crate_id"])

    @rules.on("public.pallets", ops="u", when=where(lambda c: True))
    def palleted(change: Change) -> BoxShipped:
        column = "id"
        return BoxShipped(box_id=change.new(column))

    description = describe_domain(rules, [BoxShipped])
    by_name = {r.name: r for t in description.tables.values() for r in t.rules}
    assert by_name["shipped"].reads == {"id", "label", "state"}
    assert by_name["shipped"].reads_complete
    assert by_name["crated"].reads == {"crate_id"} and by_name["crated"].reads_complete
    assert by_name["palleted"].reads == frozenset() and not by_name["palleted"].reads_complete
    (finding,) = [f for f in description.findings if f.kind == "reads-undeclared"]
    assert (finding.kind, finding.level, finding.subject) == (
        "reads-undeclared",
        "warn",
        "public.boxes rule shipped",
    )
    assert "label, state" in finding.detail
    assert finding.fix == "add them: reads=('id', 'label', 'state')"
    assert by_name["shipped"].to_dict()["reads"] == {
        "columns": ["id", "label", "state"],
        "complete": True,
    }


def test_the_shop_declares_every_column_its_rules_are_seen_to_read() -> None:
    shop = load_domain(EXAMPLE_DOMAIN)
    description = describe_domain(shop.rules, list(shop.events))
    assert [f for f in description.findings if f.kind == "reads-undeclared"] == []
    declared = {r.name: r.reads for r in shop.rules}
    for table in description.tables.values():
        for info in table.rules:
            assert info.reads <= declared[info.name], info.name
    # changed_to is a predicate with known columns: its column counts as read.
    assert "status" in {r.name: r for r in shop.rules}["order_shipped"].reads
    assert changed_to("status", "x").old_columns == {"status"}


def test_domain_describe_prints_what_each_rule_is_seen_to_read() -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli

    result = CliRunner().invoke(cli, ["domain", "describe", "--domain", EXAMPLE_DOMAIN])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("READS (SEEN)" in line for line in lines)
    (email,) = [line for line in lines if "customer_email_changed" in line]
    assert email.rstrip().endswith("email, id")
    (placed,) = [line for line in lines if " order_placed " in line]
    assert placed.rstrip().endswith("currency, customer_id, id, shipping_address, total + ?")
