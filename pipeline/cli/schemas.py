"""``cdcflow schemas``: the Avro contracts of the domain events.

\b
  generate   write schemas/<namespace>/<EventType>.avsc from the event models
  check      drift from the models; compatibility against a git ref (--against),
             the registry (--registry); the source tables (--source)
  register   register new versions and set each subject's compatibility level
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from pipeline.cli._context import CliContext, pass_cli
from pipeline.contracts.checks import (
    Workspace,
    check_against,
    check_drift,
    check_registry,
    generate,
    load_workspace,
    read_contracts,
    register,
)
from pipeline.contracts.registry import ContractRegistry
from pipeline.contracts.report import Format, Problem, Report, format_report

__all__ = ["command"]

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "github"]),
        default=None,
        help="Report as text (default; json with -o json), JSON, or GitHub workflow annotations.",
    )(func)
    func = click.option(
        "--domain",
        "domains",
        multiple=True,
        metavar="MODULE",
        help="Package of the event models; repeatable (default: setting transformer.domain).",
    )(func)
    func = click.option(
        "--schemas-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("schemas"),
        show_default=True,
        help="Where the .avsc files and compatibility.yaml are.",
    )(func)
    return func


def _workspace(ctx: CliContext, domains: tuple[str, ...], schemas_dir: Path) -> Workspace:
    return load_workspace(domains or (ctx.settings.transformer.domain,), schemas_dir)


def _format(ctx: CliContext, fmt: str | None) -> Format:
    if fmt is not None:
        return cast(Format, fmt)
    return "json" if ctx.output == "json" else "text"


def _finish(report: Report, fmt: Format, head: list[str] | None = None) -> None:
    if head and fmt == "text":
        for line in head:
            click.echo(line)
    elif head:
        report.notes[:0] = head
    click.echo(format_report(report, fmt))
    raise click.exceptions.Exit(report.exit_code)


@click.group("schemas")
def command() -> None:
    """The Avro contracts of the domain events: generate, check, register.

    \b
    Subjects follow the topic+record-name strategy: <topic>-<record full name>,
    e.g. shop.order.events-shop.events.OrderPlaced. Each subject's compatibility
    level comes from schemas/compatibility.yaml (default FULL_TRANSITIVE).
    """


@command.command("generate")
@_common
@pass_cli
def generate_cmd(
    ctx: CliContext, fmt: str | None, domains: tuple[str, ...], schemas_dir: Path
) -> None:
    """Write one .avsc per event type from the event models (stable, diff-friendly)."""
    ws = _workspace(ctx, domains, schemas_dir)
    report = Report(title="cdcflow schemas generate")
    written = generate(ws, report)
    lines = [f"{state:<9} {path}" for path, state in written]
    _finish(report, _format(ctx, fmt), lines)


@command.command("check")
@click.option(
    "--against",
    "ref",
    metavar="REF",
    help="Check compatibility with the contracts at this git ref (main, HEAD~1, a tag); "
    "transitive levels use every version in its history.",
)
@click.option(
    "--registry",
    "online",
    is_flag=True,
    help="Check compatibility with every version registered for each subject "
    "(setting registry.url).",
)
@click.option(
    "--source",
    "source",
    is_flag=True,
    help="Check the live source tables (setting source.*) against the columns the mapping "
    "rules read.",
)
@click.option("--no-drift", is_flag=True, help="Skip comparing the files with the event models.")
@_common
@pass_cli
def check_cmd(
    ctx: CliContext,
    ref: str | None,
    online: bool,
    source: bool,
    no_drift: bool,
    fmt: str | None,
    domains: tuple[str, ...],
    schemas_dir: Path,
) -> None:
    """Check the contracts; exit 1 on any error, with one line per problem.

    \b
    Always: every .avsc parses (file, line and column of an error) and, unless
    --no-drift, equals what its event model generates. Then, as asked:
    compatibility against a git ref, against the registry, and the source
    tables against the mapping rules. A check that cannot run (a missing ref,
    the registry down) is an error in the report; the other checks still run.
    """
    ws = _workspace(ctx, domains, schemas_dir)
    report = Report()
    files = read_contracts(ws, report)
    if not no_drift:
        check_drift(ws, files, report)
    if ref:
        check_against(ws, files, ref, report)
    if online:
        check_registry(ws, files, ContractRegistry(ctx.settings.registry), report)
    if source:
        _check_source(ctx, domains, report)
    _finish(report, _format(ctx, fmt))


def _check_source(ctx: CliContext, domains: tuple[str, ...], report: Report) -> None:
    import psycopg

    from pipeline.contracts.source import check_source, column_needs, live_columns
    from pipeline.domain import load_domain

    settings = ctx.settings.source
    needs = []
    for domain in domains or (ctx.settings.transformer.domain,):
        found, notes = column_needs(load_domain(domain).rules)
        needs.extend(found)
        report.notes.extend(notes)
    try:
        live = live_columns(ctx.settings.source.dsn(), {n.table for n in needs})
    except psycopg.Error as exc:
        report.add(
            Problem(
                rule="source-unreachable",
                file=f"{settings.host}:{settings.port}/{settings.database}",
                message=f"cannot read information_schema: {str(exc).strip()}",
                hint="is the source database up? are source.* (CDCFLOW_SOURCE__*) right?",
            )
        )
        return
    check_source(needs, live, report)
    columns = {f"{n.table}.{n.column}" for n in needs}
    settings = ctx.settings.source
    report.notes.append(
        f"source: {len(columns)} columns read by the mapping rules checked in "
        f"{settings.host}:{settings.port}/{settings.database}"
    )


@command.command("register")
@click.option(
    "--dry-run", is_flag=True, help="Check and say what would be registered; send nothing."
)
@_common
@pass_cli
def register_cmd(
    ctx: CliContext, dry_run: bool, fmt: str | None, domains: tuple[str, ...], schemas_dir: Path
) -> None:
    """Register new contract versions and set each subject's compatibility level.

    \b
    Refuses to run while a contract is missing, invalid or drifted from its
    model; refuses a version that is incompatible at its subject's level,
    with the same report as 'check', before sending it. Idempotent: what is
    registered already, with its level set, is left alone.
    """
    ws = _workspace(ctx, domains, schemas_dir)
    report = Report(title="cdcflow schemas register")
    files = read_contracts(ws, report)
    actions = register(ws, files, ContractRegistry(ctx.settings.registry), report, dry_run=dry_run)
    _finish(report, _format(ctx, fmt), [a.text() for a in actions])
