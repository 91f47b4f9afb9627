"""``cdcflow domain``: what a domain's rules need from the source and its routing."""

from __future__ import annotations

import click

from pipeline.cli._context import CliContext, domain_option, pass_cli, table
from pipeline.connect.domain import load_description
from pipeline.mapping.describe import DomainDescription

__all__ = ["command"]

_LEVEL_COLOURS = {"warn": "yellow", "fail": "red"}


@click.group(name="domain")
def command() -> None:
    """Inspect a domain: its tables, aggregates and what its rules read."""


@command.command()
@domain_option
@pass_cli
def describe(ctx: CliContext, domain: str | None) -> None:
    """Which tables feed which aggregate, by which column, and what rules read of old rows.

    \b
    Per aggregate (the __aggregate__ of the event types): its event topic and
    the tables feeding it, with the column each takes the aggregate id from
    (Rules.on(..., aggregate_id_from=), the YAML rule's field, or the rule's
    keyword argument of that name). Per table: its rules, the event types
    they emit (the return annotation), the columns they read from the
    before image (change.old(...), changed*(...) predicates), which need a
    suitable REPLICA IDENTITY, and every column they are seen to read
    ('+ ?': more may be read where the scan cannot follow). What cannot be read is listed as a finding.
    'cdcflow connectors plan / preflight / apply' and 'cdcflow run' check
    the connector routing against this description.
    """
    description = load_description(domain or ctx.settings.transformer.domain)
    if ctx.json_output:
        ctx.emit_json(description.to_dict())
        return
    _print(description)


def _print(description: DomainDescription) -> None:
    click.echo(f"domain {description.domain}\n")
    rows = [
        {
            "aggregate": agg.name,
            "topic": agg.topic,
            "table": t,
            "aggregate id from": column or "? (unknown)",
        }
        for agg in description.aggregates.values()
        for t, column in sorted(agg.tables.items())
    ]
    click.echo(table(rows, ["aggregate", "topic", "table", "aggregate id from"]))
    click.echo("")
    rows = []
    for info in description.tables.values():
        for rule in info.rules:
            before = ", ".join(sorted(rule.before_columns)) or "-"
            if rule.before_unknown:
                before += " + unknown"
            rows.append(
                {
                    "table": info.name,
                    "rule": rule.name,
                    "ops": rule.ops,
                    "events": ", ".join(e.rsplit(".", 1)[-1] for e in rule.events)
                    if rule.events_known
                    else "? (unknown)",
                    "old columns read": before if rule.reads_before else "-",
                    "reads (seen)": ", ".join(sorted(rule.reads))
                    + ("" if rule.reads_complete else " + ?"),
                }
            )
    click.echo(table(rows, ["table", "rule", "ops", "events", "old columns read", "reads (seen)"]))
    if description.known:
        click.echo(f"\nknown without rules: {', '.join(sorted(description.known))}")
    for finding in description.findings:
        level = click.style(finding.level, fg=_LEVEL_COLOURS.get(finding.level))
        click.echo(f"\n{level}  {finding.subject}: {finding.detail}")
        if finding.fix:
            click.echo(f"      fix: {finding.fix}")
