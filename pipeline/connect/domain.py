"""The domain a connector feeds, and what the domain asks of the connector.

A connector file may name its domain (``domain: mypkg``, next to ``name`` and
``config``); without it, the transformer's domain (setting
``transformer.domain``) is taken when the connector writes topics the
transformer reads (``transformer.topics``); otherwise no domain is checked.
With ``routing: derive`` the file asks cdcflow to add the routing each
aggregate needs (:func:`pipeline.connect.routing.derive_routing`); ``plan``
shows those keys as derived, and ``apply`` deploys them.

Used by ``connectors plan / apply / preflight`` and by ``cdcflow run`` at start.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipeline.connect.capture import captured_tables, names
from pipeline.connect.files import ConnectorSpec
from pipeline.connect.routing import RoutingReport, TableCatalog, check_routing, derive_routing
from pipeline.connect.signals import DROP_SIGNALS, signal_table
from pipeline.connect.transforms import simulate
from pipeline.errors import PreflightFailed
from pipeline.mapping.describe import DomainDescription, Finding, describe_domain
from pipeline.settings import TransformerSettings

__all__ = [
    "DomainCheck",
    "DomainProblem",
    "check_connector",
    "check_deployed",
    "domain_checks",
    "feeds_transformer",
    "fix_lines",
    "load_description",
    "raise_for_split",
    "with_domain",
]


@functools.cache
def load_description(module: str) -> DomainDescription:
    """The :class:`DomainDescription` of a domain module, loaded as ``cdcflow run`` loads it.

    Raises:
        ConfigError: the module cannot be imported or defines no rules.
    """
    from pipeline.domain import load_domain

    loaded = load_domain(module)
    return describe_domain(loaded.rules, list(loaded.events), domain=module)


def feeds_transformer(
    config: Mapping[str, str], description: DomainDescription, topics: str
) -> bool:
    """Whether the connector writes a domain table's changes to a topic matching ``topics``."""
    tables = captured_tables(config, description.all_tables)
    try:
        pattern = re.compile(topics)
    except re.error:
        return False
    return any(
        route.topic is not None and pattern.match(route.topic)
        for route in simulate(config, tables).values()
    )


@dataclass(frozen=True)
class DomainCheck:
    """One connector checked against one domain."""

    connector: str
    domain: str
    why: str
    description: DomainDescription
    config: Mapping[str, str]
    """The config as it would be deployed (derived keys included)."""
    report: RoutingReport
    """The routing of ``config``."""
    fixed: tuple[Finding, ...] = ()
    """What ``routing: derive`` fixed (the findings on the file as written)."""
    derived: Mapping[str, str] | None = None
    """The keys ``routing: derive`` added; ``None`` when the file does not ask for it."""

    @property
    def split(self) -> list[Finding]:
        return self.report.split

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "domain": self.domain,
            "why": self.why,
            "findings": [f.to_dict() for f in self.report.findings],
            "domain_findings": [f.to_dict() for f in self.description.findings],
            "derived": dict(self.derived) if self.derived is not None else None,
            "fixed_by_derived": [f.to_dict() for f in self.fixed],
            "fix": dict(self.report.derived),
        }


def _domain_of(spec: ConnectorSpec, transformer: TransformerSettings) -> tuple[str | None, str]:
    if spec.domain:
        return spec.domain, f"'domain: {spec.domain}' in {spec.source}"
    description = load_description(transformer.domain)
    if feeds_transformer(spec.config, description, transformer.topics):
        return transformer.domain, (
            f"transformer.domain: its topics match transformer.topics {transformer.topics!r}"
        )
    return None, "its topics do not match transformer.topics and the file names no domain"


def check_connector(
    spec: ConnectorSpec, description: DomainDescription, why: str
) -> tuple[ConnectorSpec, DomainCheck]:
    """Check ``spec``'s routing against the domain; with ``routing: derive``, fix it first."""
    report = check_routing(description, spec.config)
    if spec.routing != "derive":
        return spec, DomainCheck(
            spec.name, description.domain, why, description, spec.config, report
        )
    derived = derive_routing(description, spec.config)
    if not derived:
        return spec, DomainCheck(
            spec.name, description.domain, why, description, spec.config, report, derived=derived
        )
    reason = "derived (routing: derive): " + "; ".join(
        f"{f.subject} {f.kind}" for f in report.findings if f.level == "fail"
    )
    config = {**spec.config, **derived}
    fixed_spec = replace(
        spec,
        config=config,
        origin={**spec.origin, **dict.fromkeys(derived, "derived")},
        derived={**spec.derived, **dict.fromkeys(derived, reason)},
    )
    after = check_routing(description, config)
    return fixed_spec, DomainCheck(
        spec.name, description.domain, why, description, config, after, report.findings, derived
    )


def with_domain(
    specs: Sequence[ConnectorSpec], transformer: TransformerSettings
) -> tuple[list[ConnectorSpec], dict[str, DomainCheck]]:
    """Each spec with its derived routing (where asked), and its domain check (where it has one).

    Raises:
        ConfigError: a domain module cannot be loaded.
    """
    out: list[ConnectorSpec] = []
    checks: dict[str, DomainCheck] = {}
    for spec in specs:
        module, why = _domain_of(spec, transformer)
        if module is None:
            out.append(spec)
            continue
        spec, check = check_connector(spec, load_description(module), why)
        out.append(spec)
        checks[spec.name] = check
    return out, checks


def check_deployed(
    deployed: Mapping[str, Mapping[str, str]],
    description: DomainDescription,
    transformer: TransformerSettings,
) -> list[DomainCheck]:
    """The deployed connectors (name -> stored config) that feed the transformer, checked."""
    why = f"deployed; its topics match transformer.topics {transformer.topics!r}"
    out = []
    for name, config in sorted(deployed.items()):
        if feeds_transformer(config, description, transformer.topics):
            report = check_routing(description, config)
            out.append(DomainCheck(name, description.domain, why, description, config, report))
    return out


def fix_lines(report: RoutingReport) -> list[str]:
    """The derived config as lines of a connector file's ``config`` section."""
    return [f"  {key}: {value}" for key, value in report.derived.items()]


class DomainProblem(PreflightFailed):
    """A connector would split an aggregate's changes over topics or partitions."""


def raise_for_split(checks: Iterable[DomainCheck]) -> None:
    """Refuse connectors whose routing breaks an aggregate's order.

    Raises:
        DomainProblem: naming each aggregate, what is wrong and the config that fixes it.
    """
    lines: list[str] = []
    for check in checks:
        for finding in check.split:
            lines.append(f"  {check.connector}: {finding.subject}: {finding.detail}")
        if check.split and check.report.derived:
            lines.append("      fix: set in the connector file's config (or 'routing: derive'):")
            lines += ["      " + line for line in fix_lines(check.report)]
        elif check.split:
            lines += [f"      fix: {f.fix}" for f in check.split if f.fix]
    if lines:
        raise DomainProblem(
            "the connector routing breaks the order of an aggregate's events:\n" + "\n".join(lines),
            hint="set 'routing: derive' in the connector file, or apply the config above; "
            "--allow-split-aggregates deploys it anyway; nothing was deployed",
        )


# --------------------------------------------------------------------------- preflight


def _catalog(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, TableCatalog]:
    out = {}
    for table, row in rows.items():
        identity = str(row["identity"])
        key = tuple(row.get("key_columns") or ())
        by_index = tuple(row.get("index_identity_columns") or ())
        columns = key if identity == "d" else by_index if identity == "i" else ()
        out[table] = TableCatalog(identity, key, columns)
    return out


def domain_checks(
    check: DomainCheck,
    captured: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
) -> list[Finding]:
    """What the domain needs of the captured tables, as preflight findings (subject: the check).

    ``captured`` and ``existing`` are the preflight's catalogue rows (captured
    tables, every table of the database) with ``identity``, ``key_columns``
    and ``index_identity_columns``.
    """
    description = check.description
    out: list[Finding] = []
    name = f"domain {description.domain}"
    catalog = _catalog(existing)
    for table in sorted(set(description.tables) - set(captured)):
        exists = table in existing
        out.append(
            Finding(
                "table-not-captured",
                "fail" if exists else "warn",
                name,
                f"rules read {table}, which this connector does not capture"
                + ("" if exists else " (nor does it exist in this database)"),
                f"add {table} to table.include.list"
                if exists
                else f"capture {table} with the connector of its database, or remove its rules",
            )
        )
    # The signal table's records never leave the connector (a derived Filter drops them).
    dropped = (
        {signal_table(check.config)}
        if DROP_SIGNALS in names(check.config.get("transforms"))
        else set()
    )
    unknown = sorted(set(captured) - description.all_tables - dropped)
    if unknown:
        out.append(
            Finding(
                "unknown-table",
                "fail",
                name,
                f"captured tables the domain does not know: {', '.join(unknown)} (the "
                "transformer dead-letters every change of them)",
                "declare them in the domain (rules.known(...) or rules.ignore(...)), "
                "or drop them from table.include.list",
            )
        )
    for table in sorted(set(description.tables) & set(captured)):
        out += _identity_needs(table, description, catalog[table])
    report = check_routing(description, check.config, tables=captured, catalog=catalog)
    shown: str | None = None  # the first finding that carries the derived config
    for finding in report.findings:
        fix = finding.fix
        if finding.level == "fail" and report.derived:
            # One config fixes every aggregate: it is printed once, not once per finding.
            if shown is None:
                shown = f"routing {finding.subject}"
                fix = "set in the connector file's config (or 'routing: derive'): " + ", ".join(
                    f"{k}={v}" for k, v in report.derived.items()
                )
            else:
                fix = f"the config given for '{shown}' fixes this too (or 'routing: derive')"
        out.append(
            Finding(finding.kind, finding.level, f"routing {finding.subject}", finding.detail, fix)
        )
    for finding in description.findings:
        out.append(
            Finding(finding.kind, "warn", f"{name} {finding.subject}", finding.detail, finding.fix)
        )
    return out


def _identity_needs(
    table: str, description: DomainDescription, info: TableCatalog
) -> list[Finding]:
    rules = description.tables[table]
    if info.identity == "f":
        return []
    name = f"before image {table}"
    identity = {"d": "DEFAULT", "i": "USING INDEX", "n": "NOTHING"}.get(info.identity, "?")
    missing = sorted(c for c in rules.before_columns if not info.in_identity(c))
    fix = f"ALTER TABLE {table} REPLICA IDENTITY FULL"
    if missing:
        readers = [r.name for r in rules.rules if set(missing) & r.before_columns]
        return [
            Finding(
                "identity-lacks-column",
                "fail",
                name,
                f"REPLICA IDENTITY {identity}: the before image carries only "
                f"{', '.join(info.identity_columns) or 'no column'}, but "
                f"{', '.join(readers)} read(s) the old {', '.join(missing)}",
                fix,
            )
        ]
    if rules.before_unknown:
        return [
            Finding(
                "identity-reads-unknown",
                "warn",
                name,
                f"REPLICA IDENTITY {identity}, and what these rules read of the before image "
                f"cannot be told: {'; '.join(rules.before_unknown)}",
                f"{fix}, or make the rules' reads visible (change.old('col'), changed('col'))",
            )
        ]
    return []
