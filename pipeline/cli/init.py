"""``cdcflow init``: a project directory drafted from a live PostgreSQL database."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.errors import CdcflowError, ConfigError
from pipeline.onboard.catalog import Table, connect, identifier, read_tables
from pipeline.onboard.project import InitResult, draft_project
from pipeline.onboard.render import Target
from pipeline.settings import Settings

__all__ = ["command"]

_PLACEHOLDER = re.compile(r"^\$\{[a-z]+:[^}]+\}$")
_LEVEL_COLOURS = {"warn": "yellow", "fail": "red"}


@click.command(name="init")
@click.option(
    "--dsn",
    default=None,
    metavar="DSN",
    help="The source database, as a libpq DSN or URI ('host=... port=... dbname=... user=...'). "
    "Default: the source settings (CDCFLOW_SOURCE__*). A password missing from it is taken "
    "from PGPASSWORD or CDCFLOW_SOURCE__PASSWORD; it is never written to a file.",
)
@click.option(
    "--schema",
    "schemas",
    multiple=True,
    metavar="SCHEMA",
    help="Capture the tables of this schema (repeatable; default: every user schema).",
)
@click.option(
    "--tables",
    default=None,
    metavar="T1,T2",
    help="Capture only these tables (schema.table, or table in --schema / public).",
)
@click.option(
    "--name",
    default=None,
    help="The project's name: its domain package, topic prefix and topics "
    "<name>.<aggregate>.events (default: the database's name).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project directory (default: ./<name>).",
)
@click.option(
    "--connector-user",
    default="debezium",
    show_default=True,
    help="The login the Debezium connector uses (REPLICATION, owning the tables).",
)
@click.option(
    "--connector-password",
    default="${env:CDCFLOW_SOURCE_DEBEZIUM_PASSWORD}",
    show_default=True,
    help="Its password as a Kafka config-provider placeholder (${env:VAR}, "
    "${file:/path:key}), resolved on the Connect worker; a literal password is refused.",
)
@click.option(
    "--deploy",
    is_flag=True,
    help="Then, in the project directory, register the contracts and apply the connector "
    "('cdcflow schemas register', 'cdcflow connectors apply --wait'): 'cdcflow run' is next.",
)
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="Only list the tables found (key, replica identity, columns); write nothing.",
)
@click.option("--force", is_flag=True, help="Overwrite files of an existing project.")
@click.option("--dry-run", is_flag=True, help="Show the files and findings; write nothing.")
@pass_cli
def command(
    ctx: CliContext,
    dsn: str | None,
    schemas: tuple[str, ...],
    tables: str | None,
    name: str | None,
    directory: Path | None,
    connector_user: str,
    connector_password: str,
    deploy: bool,
    list_only: bool,
    force: bool,
    dry_run: bool,
) -> None:
    """Draft a cdcflow project from a live PostgreSQL database.

    \b
    Reads the tables (columns, types, keys, replica identities) and writes:
      cdcflow.toml                 settings tying domain, topics and connector together
      connectors/<name>-postgres.yaml   the Debezium connector (pgoutput, its own slot
                                   and filtered publication, heartbeat)
      <name>/__init__.py           the Domain object tying events and rules together
      <name>/events.py             <Entity>Created / Updated / Deleted per table
      <name>/rules.yaml, mappings.py   the rules that make them
      schemas/                     the events' Avro contracts
    then checks the connector against the domain (as 'connectors preflight' does)
    and prints what to refine. In the project directory:
      cdcflow schemas register && cdcflow connectors apply --wait && cdcflow run
    (--deploy runs the first two at once: then 'cdcflow run' is all that is left).

    \b
    Tables without a primary key and columns of types cdcflow does not carry
    are left out, each named in the output. Refuses to overwrite files
    without --force. Exit 0 written (or --dry-run), 1 an error (database
    unreachable, no tables, files exist), 78 invalid settings.
    """
    if not _PLACEHOLDER.match(connector_password):
        raise ConfigError(
            "--connector-password must be a config-provider placeholder, not a password",
            hint="e.g. '${env:DEBEZIUM_PASSWORD}', set on the Connect worker "
            "(config.providers=env); secrets are never written into connector files",
        )
    settings = ctx.settings
    params, password_file = _source(settings, dsn)
    with connect(make_conninfo(**params)) as conn:
        found = read_tables(
            conn,
            schemas=schemas,
            tables=[t.strip() for t in (tables or "").split(",") if t.strip()],
        )
    if list_only:
        _list(ctx, found)
        return
    database = str(params.get("dbname") or params.get("user") or "postgres")
    package = identifier(name or database)
    target = Target(
        package=package,
        host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 5432),
        database=database,
        user=str(params.get("user") or ""),
        password_file=password_file,
        connector_user=connector_user,
        connector_password=connector_password,
        schemas=tuple(sorted({t.schema for t in found})),
    )
    result = draft_project(found, target, directory or Path(package), force=force, dry_run=dry_run)
    if ctx.json_output:
        ctx.emit_json(result.to_dict())
    else:
        _print(result, target, deployed=deploy)
    if deploy and result.written:
        _deploy(result.directory)
        click.echo(f"\nnext: cd {result.directory} && cdcflow run")


_DEPLOY = (("schemas", "register"), ("connectors", "apply", "--wait"))


def _deploy(directory: Path) -> None:
    """The deploy commands, in-process, as if run in ``directory`` (its cdcflow.toml, its package).

    Raises:
        CdcflowError: a command failed (its own error was printed; the next step is named).
    """
    from pipeline.cli import cli

    here = os.getcwd()
    os.chdir(directory)
    sys.path.insert(0, os.getcwd())
    try:
        for args in _DEPLOY:
            command_line = "cdcflow " + " ".join(args)
            click.echo(f"\n$ {command_line}")
            code = 0
            try:
                cli.main(args=list(args), prog_name="cdcflow", standalone_mode=False)
            except click.exceptions.Exit as exc:
                code = exc.exit_code
            if code:
                raise CdcflowError(
                    f"'{command_line}' failed (exit {code}); the project is written",
                    hint=f"fix what it reports, then run it in {directory}",
                )
    finally:
        os.chdir(here)


def _source(settings: Settings, dsn: str | None) -> tuple[dict[str, Any], str | None]:
    """Connection parameters (password included) and the password file to record, if any."""
    src = settings.source
    if dsn is not None:
        try:
            params: dict[str, Any] = dict(conninfo_to_dict(dsn))
        except Exception as exc:  # psycopg.ProgrammingError: not a DSN
            raise ConfigError(f"--dsn is not a valid DSN: {exc}") from exc
    else:
        params = {"host": src.host, "port": src.port, "dbname": src.database, "user": src.user}
    params.setdefault("connect_timeout", 5)
    if params.get("password") or os.environ.get("PGPASSWORD"):
        return params, None
    try:
        params["password"] = src.secret()
    except ConfigError:
        return params, None  # libpq may still find one (~/.pgpass, trust)
    if src.password is None and src.password_file is not None:
        return params, str(src.password_file.resolve())
    return params, None


_IDENTITIES = {"d": "DEFAULT", "f": "FULL", "i": "USING INDEX", "n": "NOTHING"}


def _list(ctx: CliContext, found: list[Table]) -> None:
    rows = [
        {
            "table": t.qualified,
            "primary key": ", ".join(t.primary_key) or "(none)",
            "replica identity": _IDENTITIES.get(t.identity, t.identity),
            "columns": ", ".join(f"{c.name} {c.sql_type}" for c in t.columns),
        }
        for t in found
    ]
    if ctx.json_output:
        ctx.emit_json(rows)
    else:
        click.echo(table(rows, ["table", "primary key", "replica identity", "columns"]))


def _print(result: InitResult, target: Target, *, deployed: bool) -> None:
    verb = "wrote" if result.written else "would write"
    click.echo(f"{verb} {len(result.files)} files into {result.directory}/:")
    for rel in result.files:
        mark = " (overwritten)" if rel in result.overwritten and result.written else ""
        click.echo(f"  {rel}{mark}")
    click.echo(f"\ncaptured: {', '.join(result.plan.tables)}")
    if result.notes:
        click.echo("\nto refine (the draft could not decide):")
        for note in result.notes:
            click.echo(f"  {note.subject}: {note.detail}")
            if note.fix:
                click.echo(f"      fix: {note.fix}")
    if result.findings:
        click.echo("\ndomain preflight (as 'cdcflow connectors preflight' will check it):")
        for finding in result.findings:
            level = click.style(finding.level, fg=_LEVEL_COLOURS.get(finding.level))
            click.echo(f"  {level}  {finding.subject}: {finding.detail}")
            if finding.fix:
                click.echo(f"      fix: {finding.fix}")
    else:
        click.echo("\ndomain preflight: nothing to change")
    if not result.written or deployed:
        return
    password = "" if target.password_file else "export CDCFLOW_SOURCE__PASSWORD=...  # then\n  "
    click.echo(
        f"\nnext, in {result.directory}:\n"
        f"  {password}cdcflow schemas register\n"
        f"  cdcflow connectors apply --wait\n"
        f"  cdcflow run"
    )
