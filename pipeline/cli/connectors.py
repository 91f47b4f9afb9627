"""``cdcflow connectors``: connector configs as code, and operating them on Connect."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.connect import (
    Action,
    ConnectClient,
    ConnectorSpec,
    Level,
    Plan,
    PreflightReport,
    Redactor,
    ValidationResult,
    apply,
    collect_status,
    load_connectors,
    run_preflight,
    validate_connectors,
    wait_for_state,
)
from pipeline.connect import plan as make_plan
from pipeline.connect.domain import DomainCheck, fix_lines, with_domain
from pipeline.connect.lifecycle import states
from pipeline.connect.pg import is_postgres_connector, slot_name
from pipeline.connect.remove import remove_connector
from pipeline.connect.secrets import mask_value, plain_secrets
from pipeline.errors import CdcflowError, ConfigError, ConnectError

__all__ = ["CHANGES_PENDING", "command"]

F = TypeVar("F", bound=Callable[..., Any])

# Exit code of `plan` when applying would change something.
CHANGES_PENDING = 2

_STATE_COLOURS = {
    "RUNNING": "green",
    "FAILED": "red",
    "PAUSED": "yellow",
    "STOPPED": "yellow",
    "UNASSIGNED": "yellow",
    "RESTARTING": "yellow",
}
_LEVEL_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "blue"}


# --------------------------------------------------------------------------- helpers


def _files_options(func: F) -> F:
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


def _specs(ctx: CliContext, directory: Path | None, environment: str | None) -> list[ConnectorSpec]:
    conf = ctx.settings.connect
    return load_connectors(directory or conf.connectors_dir, environment or conf.environment)


def _with_domains(
    ctx: CliContext, specs: Sequence[ConnectorSpec]
) -> tuple[list[ConnectorSpec], dict[str, DomainCheck]]:
    """The specs with any derived routing, and each one's check against the domain it feeds."""
    return with_domain(specs, ctx.settings.transformer)


def _print_domains(checks: Iterable[DomainCheck]) -> None:
    for check in checks:
        findings = check.report.findings
        head = f"{check.connector}: domain {check.domain} ({check.why})"
        if check.derived:
            fixed = ", ".join(f"{f.subject} ({f.kind})" for f in check.fixed if f.level == "fail")
            head += f"; routing derived for {fixed or 'tables whose record key is not known'}"
        click.echo(head)
        for finding in (*findings, *check.description.findings):
            level = click.style(f"{finding.level:<4}", fg=_LEVEL_COLOURS[finding.level])
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


def _select(specs: Sequence[ConnectorSpec], names: Sequence[str]) -> list[ConnectorSpec]:
    if not names:
        return list(specs)
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"not declared in the connector files: {', '.join(unknown)}",
            hint=f"declared: {', '.join(sorted(known)) or 'none'}",
        )
    return [known[n] for n in names]


def _client(ctx: CliContext) -> ConnectClient:
    return ConnectClient.from_settings(ctx.settings.connect)


def _err(message: str) -> None:
    click.echo(message, err=True)


def _colour_words(text: str, colours: dict[str, str]) -> str:
    # Styled after the table is laid out: escape codes are invisible, so the
    # columns stay aligned; click.echo drops them when stdout is no terminal.
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, colours)) + r")\b")
    return pattern.sub(lambda m: click.style(m[1], fg=colours[m[1]]), text)


def _warn_plain_secrets(specs: Iterable[ConnectorSpec]) -> list[str]:
    warnings = []
    for spec in specs:
        for key in plain_secrets(spec.config):
            warnings.append(
                f"{spec.name}: {key} is written out in plain text ({spec.where(key)}); "
                "use a ${env:...} or ${file:...} placeholder"
            )
    for warning in warnings:
        _err(click.style("warning: ", fg="yellow") + warning)
    return warnings


def _confirm(what: str, yes: bool) -> None:
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


# --------------------------------------------------------------------------- validate


@command.command()
@_files_options
@click.argument("names", nargs=-1)
@pass_cli
def validate(
    ctx: CliContext, directory: Path | None, environment: str | None, names: tuple[str, ...]
) -> None:
    """Validate declared connectors on the worker, printing every field error.

    \b
    Connect's own validation of each connector (or only NAMES):
      PUT /connector-plugins/{class}/config/validate
    The worker resolves placeholders first, and Debezium logs in to the
    database, so a wrong password shows up here. Nothing is changed.
    Exits 1 if any connector is invalid.
    """
    specs = _select(_specs(ctx, directory, environment), names)
    warnings = _warn_plain_secrets(specs)
    with _client(ctx) as client:
        results = validate_connectors(client, specs, Redactor.for_configs(s.config for s in specs))
    if ctx.json_output:
        ctx.emit_json(
            {
                "valid": all(r.ok for r in results),
                "connectors": [r.to_dict() for r in results],
                "warnings": warnings,
            }
        )
    else:
        _print_validation(results)
    if not all(r.ok for r in results):
        sys.exit(1)


def _print_validation(results: Iterable[ValidationResult]) -> None:
    for result in results:
        if result.ok:
            click.echo(f"{result.connector}: " + click.style("valid", fg="green"))
            continue
        click.echo(
            f"{result.connector}: "
            + click.style(f"{len(result.errors)} invalid field(s)", fg="red")
        )
        for name, messages in sorted(result.errors.items()):
            where = f"  [{result.where[name]}]" if name in result.where else ""
            for message in messages:
                click.echo(f"  {click.style(name, bold=True)}: {message}{where}")


# --------------------------------------------------------------------------- plan / apply


@command.command()
@_files_options
@click.option(
    "--prune", is_flag=True, help="Plan to delete deployed connectors no longer declared."
)
@click.argument("names", nargs=-1)
@pass_cli
def plan(
    ctx: CliContext,
    directory: Path | None,
    environment: str | None,
    prune: bool,
    names: tuple[str, ...],
) -> None:
    """Show what apply would change: create, update (field by field), delete.

    Compares the declared connectors (or only NAMES) with the deployed ones,
    key by key: keys the server adds are ignored, and values that are
    placeholders or look secret are masked. Deployed connectors that are not
    declared are listed; with --prune they are planned for deletion.

    \b
    Each connector is also checked against the domain it feeds (the file's
    'domain:', else transformer.domain when its topics are the transformer's):
    an aggregate whose tables are split over topics or partitions is
    reported with the config that fixes it; with 'routing: derive' in the
    file that config is planned, its keys marked as derived.

    Exits 0 when nothing would change, 2 when changes are pending, 1 on error.
    """
    specs = _select(_specs(ctx, directory, environment), names)
    warnings = _warn_plain_secrets(specs)
    specs, domains = _with_domains(ctx, specs)
    with _client(ctx) as client:
        result = make_plan(
            client,
            specs,
            prune=prune,
            only=names or None,
            prune_prefix=ctx.settings.connect.prune_prefix,
        )
    if ctx.json_output:
        ctx.emit_json(
            {
                **result.to_dict(),
                "domains": [c.to_dict() for c in domains.values()],
                "warnings": warnings,
            }
        )
    else:
        _print_plan(result)
        _print_domains(domains.values())
    if result.has_changes:
        sys.exit(CHANGES_PENDING)


_SIGNS = {"add": ("+", "green"), "change": ("~", "yellow"), "remove": ("-", "red")}
_ACTION_COLOURS = {
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "undeclared": "magenta",
    "unchanged": None,
}


def _print_plan(result: Plan) -> None:
    for change in result.changes:
        label = click.style(str(change.action), fg=_ACTION_COLOURS[str(change.action)], bold=True)
        where = ""
        if change.spec is not None:
            files = [str(change.spec.source)] + (
                [str(change.spec.overlay)] if change.spec.overlay else []
            )
            where = f"  ({' + '.join(files)})"
        note = ""
        if change.action is Action.UNDECLARED:
            note = "  (deployed, not declared: kept; apply --prune deletes it)"
        click.echo(f"{change.name}: {label}{where}{note}")
        for field in change.fields:
            sign, colour = _SIGNS[field.kind]
            before, after = field.shown()
            masked = f"  ({field.note()}, masked)" if field.sensitive and field.note() else ""
            if change.spec is not None and field.key in change.spec.derived:
                masked += "  (derived)"
            if field.kind == "add":
                text = f"{field.key} = {after}"
            elif field.kind == "remove":
                text = f"{field.key} (was {before})"
            else:
                text = f"{field.key}: {before} -> {after}"
            click.echo("  " + click.style(f"{sign} {text}", fg=colour) + masked)
    summary = result.summary()
    click.echo(
        f"\n{summary['create']} to create, {summary['update']} to update, "
        f"{summary['delete']} to delete, "
        f"{summary['unchanged']} unchanged"
        + (f", {summary['undeclared']} undeclared (kept)" if summary["undeclared"] else "")
        + "."
    )


@command.command(name="apply")
@_files_options
@click.option(
    "--prune",
    is_flag=True,
    help="Delete deployed connectors no longer declared (without it they are only reported).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Return once every declared connector and all its tasks are RUNNING; "
    "fail with the trace of a FAILED task.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds --wait waits.",
)
@click.option(
    "--settle",
    "settle_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds RUNNING must hold before --wait returns (a task that fails on start "
    "reports RUNNING first).",
)
@click.option("--skip-preflight", is_flag=True, help="Do not check the source database first.")
@click.option(
    "--allow-split-aggregates",
    is_flag=True,
    help="Deploy a connector even though its routing splits an aggregate of its domain "
    "over topics or partitions (its events may then leave commit order).",
)
@click.argument("names", nargs=-1)
@pass_cli
def apply_command(
    ctx: CliContext,
    directory: Path | None,
    environment: str | None,
    prune: bool,
    wait: bool,
    timeout_s: float,
    settle_s: float,
    skip_preflight: bool,
    allow_split_aggregates: bool,
    names: tuple[str, ...],
) -> None:
    """Make the deployed connectors what the files declare; idempotent.

    \b
    1. plan (as 'cdcflow connectors plan', derived routing included); refuse
       a connector whose routing splits an aggregate of its domain, unless
       --allow-split-aggregates
    2. validate every connector to create or update on the worker
    3. preflight the source database of each Debezium Postgres connector
    4. PUT /connectors/{name}/config for each change; unchanged ones get no request
    5. with --prune, delete connectors no longer declared
    6. with --wait, wait until everything runs
    Nothing on the server changes unless steps 2 and 3 pass for every
    connector. Exits 0 on success (also when there was nothing to do).
    """
    specs = _select(_specs(ctx, directory, environment), names)
    warnings = _warn_plain_secrets(specs)
    specs, domains = _with_domains(ctx, specs)
    with _client(ctx) as client:
        result = apply(
            client,
            specs,
            source=ctx.settings.source,
            prune=prune,
            wait=wait,
            timeout_s=timeout_s,
            settle_s=settle_s,
            preflight=not skip_preflight,
            only=names or None,
            prune_prefix=ctx.settings.connect.prune_prefix,
            progress=lambda msg: _err(f"  {msg}"),
            domains=domains,
            allow_split_aggregates=allow_split_aggregates,
        )
    if ctx.json_output:
        ctx.emit_json(
            {
                **result.to_dict(),
                "domains": [c.to_dict() for c in domains.values()],
                "warnings": warnings,
            }
        )
        return
    _print_preflight(result.preflight, only_problems=True)
    _print_domains(domains.values())
    if not result.plan.has_changes:
        click.echo("no changes: the deployed connectors match the files")
    for name in result.applied:
        click.echo(f"{name}: " + click.style("applied", fg="green"))
    for change in result.plan.of(Action.DELETE):
        click.echo(f"{change.name}: " + click.style("deleted", fg="red"))
        config = {f.key: f.before for f in change.fields if f.before is not None}
        if is_postgres_connector(config):
            _slot_left(change.name, slot_name(config))
    for change in result.plan.of(Action.UNDECLARED):
        click.echo(f"{change.name}: deployed but not declared (kept; --prune deletes it)")
    for name in sorted(result.running):
        click.echo(f"{name}: " + click.style("RUNNING", fg="green"))
    for name, state in sorted(result.not_waited.items()):
        click.echo(
            f"{name}: {_colour_words(state, _STATE_COLOURS)} (left as it is; 'resume' starts it)"
        )


# --------------------------------------------------------------------------- preflight


@command.command()
@_files_options
@click.argument("names", nargs=-1)
@pass_cli
def preflight(
    ctx: CliContext, directory: Path | None, environment: str | None, names: tuple[str, ...]
) -> None:
    """Check the source database of each Debezium Postgres connector.

    \b
    The connector's own login (its ${env:...} / ${file:...} placeholders
    resolved here when possible), wal_level = logical, REPLICATION, a free
    replication slot and WAL sender, the captured tables exist and are
    readable, REPLICA IDENTITY per table (a warning for TOAST-able columns
    without FULL), the publication, the heartbeat. With a domain (the file's
    'domain:', else transformer.domain when the connector's topics are the
    transformer's): tables its rules need but not captured, captured tables
    it does not know, replica identities its rules' before-image reads need,
    aggregates split over topics or partitions, routing columns outside the
    replica identity. Each failed check says how to fix it. Exits 1 if any
    check failed (warnings do not fail).
    """
    specs = [
        s
        for s in _select(_specs(ctx, directory, environment), names)
        if is_postgres_connector(s.config)
    ]
    specs, domains = _with_domains(ctx, specs)
    deployed: set[str] = set()
    try:
        with _client(ctx) as client:
            deployed = set(client.list_connectors())
    except ConnectError:
        pass  # preflight is about the database; Connect being down is not its failure
    reports = [
        run_preflight(
            s.name,
            s.config,
            ctx.settings.source,
            deployed=s.name in deployed,
            domain=domains.get(s.name),
        )
        for s in specs
    ]
    if ctx.json_output:
        ctx.emit_json(
            {"ok": all(r.ok for r in reports), "connectors": [r.to_dict() for r in reports]}
        )
    else:
        if not specs:
            click.echo("no Debezium Postgres connector declared: nothing to check")
        _print_preflight(reports)
    if not all(r.ok for r in reports):
        sys.exit(1)


def _print_preflight(reports: Iterable[PreflightReport], *, only_problems: bool = False) -> None:
    for report in reports:
        checks = [
            c for c in report.checks if not only_problems or c.level in (Level.WARN, Level.FAIL)
        ]
        if not checks:
            continue
        click.echo(
            f"{report.connector}: preflight"
            + (f" (as {report.checked_as})" if report.checked_as else "")
        )
        for check in checks:
            level = click.style(f"{check.level.value:<4}", fg=_LEVEL_COLOURS[check.level.value])
            click.echo(f"  {level}  {check.name}: {check.detail}")
            if check.fix and check.level in (Level.WARN, Level.FAIL, Level.SKIP):
                click.echo(f"        fix: {check.fix}")


# --------------------------------------------------------------------------- status


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{value} B" if unit == "B" else f"{value} B ({size:.1f} {unit})"
        size /= 1024
    return f"{value} B"  # pragma: no cover


@command.command()
@_files_options
@click.option("--no-slots", is_flag=True, help="Do not read replication slots from the database.")
@click.argument("names", nargs=-1)
@pass_cli
def status(
    ctx: CliContext,
    directory: Path | None,
    environment: str | None,
    no_slots: bool,
    names: tuple[str, ...],
) -> None:
    """Connector and task states, worker ids, and each Debezium slot's retained WAL.

    Every deployed connector (or only NAMES). For Debezium Postgres
    connectors, the replication slot is read from pg_replication_slots:
    RETAINED WAL is what the server keeps for the slot (current position
    minus restart_lsn), in bytes. Exits 1 if a connector or task FAILED.
    """
    declared: list[str] | None = None
    # status works without connector files, e.g. on an operator's laptop
    with contextlib.suppress(ConfigError):
        declared = [s.name for s in _specs(ctx, directory, environment)]
    with _client(ctx) as client:
        statuses = collect_status(
            client,
            names or None,
            source=None if no_slots else ctx.settings.source,
            declared=declared,
        )
    if ctx.json_output:
        ctx.emit_json([s.to_dict() for s in statuses])
    else:
        rows = []
        for s in statuses:
            slot = "-"
            if s.slot_name:
                if s.slot is not None:
                    slot = f"{s.slot_name} ({'active' if s.slot.active else 'inactive'})"
                elif s.slot_error:
                    slot = f"{s.slot_name} (unreadable)"
                else:
                    slot = f"{s.slot_name} ({'missing' if not no_slots else 'not read'})"
            rows.append(
                {
                    "name": s.name + ("" if s.declared in (None, True) else " *"),
                    "state": s.state,
                    "worker": s.worker_id or "-",
                    "tasks": " ".join(f"{t.id}:{t.state}" for t in s.tasks) or "-",
                    "slot": slot,
                    "retained wal": _bytes(s.slot.retained_wal_bytes) if s.slot else "-",
                }
            )
        if rows:
            click.echo(
                _colour_words(
                    table(rows, ["name", "state", "worker", "tasks", "slot", "retained wal"]),
                    _STATE_COLOURS,
                )
            )
        else:
            click.echo("no connectors deployed")
        if any(s.declared is False for s in statuses):
            click.echo("* deployed but not declared in the connector files")
        for s in statuses:
            if s.slot_error:
                _err(f"{s.name}: could not read slot {s.slot_name}: {s.slot_error}")
            for where, trace in [("connector", s.trace)] + [
                (f"task {t.id}", t.trace) for t in s.tasks
            ]:
                if trace:
                    first = trace.strip().splitlines()[0]
                    click.echo(f"{s.name} {where}: " + click.style(first, fg="red"))
    if not all(s.healthy for s in statuses):
        sys.exit(1)


@command.command()
@pass_cli
def plugins(ctx: CliContext) -> None:
    """The connector classes installed on the Connect worker."""
    with _client(ctx) as client:
        found = client.connector_plugins()
    if ctx.json_output:
        ctx.emit_json(found)
    else:
        click.echo(
            table(
                [
                    {"class": p.get("class"), "type": p.get("type"), "version": p.get("version")}
                    for p in found
                ],
                ["class", "type", "version"],
            )
        )


# --------------------------------------------------------------------------- operate


def _each(
    ctx: CliContext, names: Sequence[str], verb: str, call: Callable[[ConnectClient, str], Any]
) -> None:
    with _client(ctx) as client:
        for name in names:
            call(client, name)
            if not ctx.json_output:
                click.echo(f"{name}: {verb}")
    if ctx.json_output:
        ctx.emit_json({"connectors": list(names), "action": verb})


@command.command()
@click.option(
    "--failed-only",
    is_flag=True,
    help="Restart only the connector instance and tasks that are FAILED.",
)
@click.argument("name")
@pass_cli
def restart(ctx: CliContext, failed_only: bool, name: str) -> None:
    """Restart a connector and its tasks (POST /restart?includeTasks=true).

    With --failed-only (onlyFailed=true) only the instances that are FAILED
    restart, after the cause is fixed; the others keep running.
    """
    with _client(ctx) as client:
        answer = client.restart(name, include_tasks=True, only_failed=failed_only)
    if ctx.json_output:
        ctx.emit_json(answer or {"name": name})
        return
    if answer:
        connector, tasks = states(answer)
        click.echo(
            _colour_words(
                f"{name}: connector {connector}, tasks [{' '.join(tasks) or 'none'}]",
                _STATE_COLOURS,
            )
        )
    else:
        click.echo(f"{name}: restart requested")


@command.command()
@click.argument("names", nargs=-1, required=True)
@pass_cli
def pause(ctx: CliContext, names: tuple[str, ...]) -> None:
    """Pause connectors: tasks stay assigned but stop reading (PUT /pause).

    For Debezium the replication slot stays, and retains WAL while paused.
    """
    _each(ctx, names, "pause requested", lambda c, n: c.pause(n))


@command.command()
@click.argument("names", nargs=-1, required=True)
@pass_cli
def resume(ctx: CliContext, names: tuple[str, ...]) -> None:
    """Resume paused or stopped connectors (PUT /resume)."""
    _each(ctx, names, "resume requested", lambda c, n: c.resume(n))


@command.command()
@click.option("--wait", is_flag=True, help="Return once the connector reports STOPPED.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds --wait waits.",
)
@click.argument("names", nargs=-1, required=True)
@pass_cli
def stop(ctx: CliContext, wait: bool, timeout_s: float, names: tuple[str, ...]) -> None:
    """Stop connectors: shut down connector and tasks, keep config and offsets (PUT /stop).

    A stopped connector's offsets can be read and reset ('offsets').
    'resume' starts it again.
    """
    _each(ctx, names, "stop requested", lambda c, n: c.stop(n))
    if wait:
        with _client(ctx) as client:
            wait_for_state(client, names, "STOPPED", timeout_s=timeout_s)
        if not ctx.json_output:
            click.echo(_colour_words(f"{', '.join(names)}: STOPPED", _STATE_COLOURS))


@command.command()
@click.option(
    "--drop-slot",
    is_flag=True,
    help="Forget the connector completely: stop it, reset its offsets, delete it, "
    "and drop its Debezium replication slot.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("names", nargs=-1, required=True)
@pass_cli
def delete(ctx: CliContext, drop_slot: bool, yes: bool, names: tuple[str, ...]) -> None:
    """Delete connectors (DELETE /connectors/{name}).

    \b
    Connect keeps a deleted connector's offsets, and a Debezium Postgres
    connector's replication slot outlives it, making PostgreSQL keep WAL.
    --drop-slot removes both: the connector is stopped, its offsets reset
    (so one created again under the name snapshots afresh), it is deleted,
    and its slot dropped. Without it the slot is reported.
    A connector still declared in the files comes back with the next apply.
    """
    _confirm(f"delete {', '.join(names)}", yes)
    out = []
    with _client(ctx) as client:
        for name in names:
            removal = remove_connector(client, name, source=ctx.settings.source, forget=drop_slot)
            out.append(removal.to_dict())
            if ctx.json_output:
                continue
            click.echo(f"{name}: " + click.style("deleted", fg="red"))
            if removal.slot and removal.slot_dropped is None:
                _slot_left(name, removal.slot)
            elif removal.slot:
                _err(
                    f"  replication slot {removal.slot!r} "
                    + ("dropped" if removal.slot_dropped else "did not exist")
                )
    if ctx.json_output:
        ctx.emit_json(out)


def _slot_left(name: str, slot: str) -> None:
    _err(
        f"  {name}: replication slot {slot!r} remains and retains WAL; once the connector is "
        f"gone for good: SELECT pg_drop_replication_slot('{slot}');"
    )


# --------------------------------------------------------------------------- offsets


@command.group()
def offsets() -> None:
    """Read or reset a connector's source offsets (the connector must be STOPPED to reset).

    \b
    For Debezium the offset is its position in the WAL (lsn, txId) and
    whether the snapshot completed. After a reset, a connector with
    snapshot.mode=initial snapshots its tables again when resumed.
    """


@offsets.command(name="get")
@click.argument("name")
@pass_cli
def offsets_get(ctx: CliContext, name: str) -> None:
    """Print a connector's offsets (GET /connectors/{name}/offsets)."""
    with _client(ctx) as client:
        answer = client.offsets(name)
    if ctx.json_output:
        ctx.emit_json(answer)
        return
    entries = answer.get("offsets") or []
    if not entries:
        click.echo(f"{name}: no offsets committed")
    for entry in entries:
        partition = ", ".join(f"{k}={v}" for k, v in (entry.get("partition") or {}).items())
        offset = ", ".join(
            f"{k}={mask_value(k, str(v))}" for k, v in (entry.get("offset") or {}).items()
        )
        click.echo(f"{name}  [{partition}]  {offset}")


@offsets.command(name="reset")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("name")
@pass_cli
def offsets_reset(ctx: CliContext, yes: bool, name: str) -> None:
    """Forget a STOPPED connector's offsets (DELETE /connectors/{name}/offsets).

    Stop it first ('cdcflow connectors stop NAME --wait'), resume it after.
    """
    with _client(ctx) as client:
        state, _ = states(client.status(name))
        if state != "STOPPED":
            raise CdcflowError(
                f"connector {name!r} is {state}; offsets can only be reset while it is STOPPED",
                hint=f"cdcflow connectors stop {name} --wait",
            )
        _confirm(f"reset the offsets of {name}", yes)
        answer = client.reset_offsets(name)
    if ctx.json_output:
        ctx.emit_json(answer)
    else:
        click.echo(f"{name}: {answer.get('message', 'offsets reset')}")
