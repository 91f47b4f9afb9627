"""What every ``cdcflow connectors`` command shares: the group, file options, output helpers.

The commands call these through the module (``common.client(ctx)``), so a
test replaces the Connect client in one place.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli._context import CliContext, pass_cli
from pipeline.connect import (
    ConnectClient,
    ConnectorSpec,
    load_connectors,
)
from pipeline.connect.domain import DomainCheck, fix_lines, with_domain
from pipeline.connect.secrets import plain_secrets
from pipeline.errors import ConfigError
from pipeline.selection import select_named

__all__ = [
    "CHANGES_PENDING",
    "LEVEL_COLOURS",
    "STATE_COLOURS",
    "client",
    "colour_words",
    "command",
    "confirm",
    "declared_command",
    "err",
    "files_options",
    "print_domains",
    "select",
    "slot_left",
    "specs",
    "wait_options",
    "warn_plain_secrets",
    "with_domains",
]

F = TypeVar("F", bound=Callable[..., Any])

# Exit code of `plan` when applying would change something.
CHANGES_PENDING = 2

STATE_COLOURS = {
    "RUNNING": "green",
    "FAILED": "red",
    "PAUSED": "yellow",
    "STOPPED": "yellow",
    "UNASSIGNED": "yellow",
    "RESTARTING": "yellow",
}
LEVEL_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "blue"}

# --------------------------------------------------------------------------- helpers


def files_options(func: F) -> F:
    func = click.option(
        "--env",
        "environment",
        metavar="ENV",
        help="Apply the overlay connectors/overlays/ENV/ over the base files "
        "(default: setting connect.environment, env CDCFLOW_CONNECT__ENVIRONMENT).",
    )(func)
    func = click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory of the connector files "
        "(default: setting connect.connectors_dir, 'connectors').",
    )(func)
    return func


def declared_command(
    name: str | None = None,
) -> Callable[[Callable[..., None]], click.Command]:
    """A ``connectors`` command over the declared connectors, or only those named.

    The command takes --dir and --env (:func:`files_options`), its own options
    (declared below this decorator) and the NAMES argument. The function is
    called with the context, the connectors the files declare (only NAMES when
    given; an undeclared name is a :class:`ConfigError`), NAMES, and the
    command's own options by name.
    """

    def decorate(func: Callable[..., None]) -> click.Command:
        def run(
            ctx: CliContext,
            /,
            directory: Path | None,
            environment: str | None,
            names: tuple[str, ...],
            **options: Any,
        ) -> None:
            func(ctx, select(specs(ctx, directory, environment), names), names, **options)

        functools.update_wrapper(run, func)  # its name, help text and options
        with_names = click.argument("names", nargs=-1)(pass_cli(run))
        return command.command(name)(files_options(with_names))

    return decorate


def wait_options(
    until: str, *, timeout_s: float, waits: bool = False, after: str = ""
) -> Callable[[F], F]:
    """``--wait`` (helped by ``until``; ``--wait/--no-wait`` when ``waits`` is the default)
    and ``--timeout`` (``timeout_s``: seconds, ``after`` saying what goes on after it)."""

    def decorate(func: F) -> F:
        func = click.option(
            "--timeout",
            "timeout_s",
            type=float,
            default=timeout_s,
            show_default=True,
            help=f"Seconds --wait waits{after}.",
        )(func)
        if waits:
            return click.option("--wait/--no-wait", default=True, show_default=True, help=until)(
                func
            )
        return click.option("--wait", is_flag=True, help=until)(func)

    return decorate


def specs(ctx: CliContext, directory: Path | None, environment: str | None) -> list[ConnectorSpec]:
    conf = ctx.settings.connect
    return load_connectors(directory or conf.connectors_dir, environment or conf.environment)


def with_domains(
    ctx: CliContext, specs: Sequence[ConnectorSpec]
) -> tuple[list[ConnectorSpec], dict[str, DomainCheck]]:
    """The specs with any derived routing, and each one's check against the domain it feeds."""
    return with_domain(specs, ctx.settings.transformer)


def print_domains(checks: Iterable[DomainCheck]) -> None:
    for check in checks:
        findings = check.report.findings
        head = f"{check.connector}: domain {check.domain} ({check.why})"
        if check.derived:
            fixed = ", ".join(f"{f.subject} ({f.kind})" for f in check.fixed if f.level == "fail")
            head += f"; routing derived for {fixed or 'tables whose record key is not known'}"
        click.echo(head)
        for finding in (*findings, *check.description.findings):
            level = click.style(f"{finding.level:<4}", fg=LEVEL_COLOURS[finding.level])
            click.echo(f"  {level}  {finding.subject}: {finding.detail}")
            if finding.fix:
                click.echo(f"        fix: {finding.fix}")
        if check.split and check.report.derived:
            click.echo("        the config that fixes it (or set 'routing: derive' in the file):")
            for line in fix_lines(check.report):
                click.echo("      " + line)
        if not findings and not check.description.findings:
            click.echo(
                "  " + click.style("ok", fg="green") + "    every aggregate has one ordered stream"
            )


def select(specs: Sequence[ConnectorSpec], names: Sequence[str]) -> list[ConnectorSpec]:
    return select_named(
        {s.name: s for s in specs},
        names,
        error=ConfigError,
        unknown="not declared in the connector files: {}",
    )


def client(ctx: CliContext) -> ConnectClient:
    return ConnectClient.from_settings(ctx.settings.connect)


def err(message: str) -> None:
    click.echo(message, err=True)


def colour_words(text: str, colours: dict[str, str]) -> str:
    # Styled after the table is laid out: escape codes are invisible, so the
    # columns stay aligned; click.echo drops them when stdout is no terminal.
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, colours)) + r")\b")
    return pattern.sub(lambda m: click.style(m[1], fg=colours[m[1]]), text)


def warn_plain_secrets(specs: Iterable[ConnectorSpec]) -> list[str]:
    warnings = []
    for spec in specs:
        for key in plain_secrets(spec.config):
            warnings.append(
                f"{spec.name}: {key} is written out in plain text ({spec.where(key)}); "
                "use a ${env:...} or ${file:...} placeholder"
            )
    for warning in warnings:
        err(click.style("warning: ", fg="yellow") + warning)
    return warnings


def confirm(what: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{what}: pass --yes to confirm (no terminal to ask on)")
    click.confirm(what + "?", abort=True)


# --------------------------------------------------------------------------- the group


@click.group(name="connectors")
def command() -> None:
    """Connector configs as code: validate, plan, apply, and operate them.

    \b
    One connector per file in connectors/ (YAML or JSON, the shape of
    Connect's POST /connectors body: name + config). Secrets are
    ${env:VAR} / ${file:path:key} placeholders, resolved by the Connect
    worker's config providers. An environment's overlay,
    connectors/overlays/ENV/<file>, replaces keys of the base file (null
    removes one); select it with --env.

    \b
    Typical use:
      cdcflow connectors plan            what would change (exit 2 if anything)
      cdcflow connectors apply --wait    make it so, and wait until RUNNING
      cdcflow connectors status          states, workers, replication slot WAL

    The Connect URL is setting connect.url (env CDCFLOW_CONNECT__URL).
    """


def slot_left(name: str, slot: str) -> None:
    err(
        f"  {name}: replication slot {slot!r} remains and retains WAL; once the connector is "
        f"gone for good: SELECT pg_drop_replication_slot('{slot}');"
    )
