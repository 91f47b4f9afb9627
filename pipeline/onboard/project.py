"""``cdcflow init``'s steps: read the catalogue, draft, write, generate the contracts, check.

1. Read the tables of the source database (:mod:`pipeline.onboard.catalog`).
2. Draft the domain (:func:`~pipeline.onboard.plan.plan_domain`) and render its files
   (:func:`~pipeline.onboard.render.render_files`).
3. Write them into a staging directory, import the drafted package from it and
   generate its ``.avsc`` contracts (the same function as ``cdcflow schemas generate``):
   a draft that does not import or cannot be expressed in Avro fails here, before
   anything reaches the project directory.
4. Check the drafted connector against the drafted domain with the domain
   preflight of ``cdcflow connectors preflight`` (:func:`pipeline.connect.domain.domain_checks`),
   with the replica identities and keys just read.
5. Unless it is a dry run, copy the staged files into the project directory.
   Existing files are never overwritten without ``force``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.connect.domain import check_connector, domain_checks
from pipeline.connect.files import parse_connector_file
from pipeline.contracts.checks import generate, load_workspace
from pipeline.contracts.report import Report
from pipeline.errors import CdcflowError, ConfigError
from pipeline.events import DomainEvent
from pipeline.mapping.describe import Finding, describe_domain
from pipeline.mapping.registry import Rules
from pipeline.onboard.catalog import Table
from pipeline.onboard.plan import Note, Plan, plan_domain
from pipeline.onboard.render import Target, render_files

__all__ = ["InitResult", "ProjectExists", "draft_project"]


class ProjectExists(CdcflowError):
    """The project directory already holds files ``init`` would write."""


@dataclass
class InitResult:
    directory: Path
    plan: Plan
    files: list[str] = field(default_factory=list)
    """Paths relative to ``directory``, sources first, then the contracts."""
    overwritten: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    written: bool = False

    @property
    def notes(self) -> tuple[Note, ...]:
        return self.plan.notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "written": self.written,
            "files": self.files,
            "overwritten": self.overwritten,
            "tables": self.plan.tables,
            "notes": [vars(n) for n in self.plan.notes],
            "findings": [f.to_dict() for f in self.findings],
        }


def draft_project(
    tables: Sequence[Table],
    target: Target,
    directory: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> InitResult:
    """Draft, check and (unless ``dry_run``) write the project (see the module doc).

    Raises:
        CdcflowError: no table can be drafted (each reason named).
        ProjectExists: a file would be overwritten and ``force`` is not set.
        ConfigError: the package name is taken by an importable module.
        SchemaContractError / ConfigError: the drafted domain does not import or
            cannot be expressed in Avro (a bug in the draft: please report it).
    """
    _check_name(target.package, directory)
    try:
        plan = plan_domain(target.package, tables)
    except ValueError as exc:
        raise CdcflowError(
            str(exc), hint="give the tables primary keys, or pick others with --tables"
        ) from exc
    sources = render_files(plan, target)
    result = InitResult(directory, plan)
    with tempfile.TemporaryDirectory(prefix="cdcflow-init-") as tmp:
        stage = Path(tmp)
        for rel, text in sources.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        with _importable(stage, target.package):
            contracts = _contracts(stage, target.package)
            result.findings = _preflight(stage, target, plan, tables)
        result.files = [*sources, *contracts]
        result.overwritten = [rel for rel in result.files if (directory / rel).exists()]
        if result.overwritten and not force and not dry_run:
            raise ProjectExists(
                f"{directory} already holds files init would write: "
                + ", ".join(result.overwritten[:8])
                + (", ..." if len(result.overwritten) > 8 else ""),
                hint="pass --force to overwrite them (your edits to them are lost), "
                "--dry-run to see the files, or --dir for another directory",
            )
        if not dry_run:
            for rel in result.files:
                dest = directory / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stage / rel, dest)
            result.written = True
    return result


def _check_name(package: str, directory: Path) -> None:
    """Refuse a package name that an installed module already answers to.

    ``cdcflow run`` would import that module instead of the project's package.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    origin = Path(spec.origin or next(iter(spec.submodule_search_locations or []), ""))
    if origin.resolve().is_relative_to((directory / package).resolve()):
        return  # this project's own package (init --force in its directory)
    raise ConfigError(
        f"the name {package!r} is taken by an importable module ({origin}): "
        "the project's domain package would not be found",
        hint="choose another name with --name",
    )


@contextmanager
def _importable(root: Path, package: str) -> Iterator[None]:
    """``package`` imported from ``root`` inside the block, forgotten after it."""

    def forget() -> None:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]

    if package in sys.modules:
        forget()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        forget()


def _contracts(stage: Path, package: str) -> list[str]:
    workspace = load_workspace([package], stage / "schemas")
    report = Report(title="cdcflow init")
    written = generate(workspace, report)
    if report.problems:
        raise ConfigError(
            "the drafted events cannot be expressed in Avro: "
            + "; ".join(str(p) for p in report.problems),
            hint="please report this with the table definitions; pick other tables with --tables",
        )
    return sorted(str(path.relative_to(stage)) for path, _ in written)


def _preflight(stage: Path, target: Target, plan: Plan, tables: Sequence[Table]) -> list[Finding]:
    # The drafted modules themselves, not a loader's cache keyed by the package name:
    # a second draft of the same name in one process must not see the first.
    rules = importlib.import_module(f"{target.package}.mappings").rules
    assert isinstance(rules, Rules)
    events_module = importlib.import_module(f"{target.package}.events")
    events = [
        value
        for value in vars(events_module).values()
        if isinstance(value, type) and issubclass(value, DomainEvent) and value.__aggregate__
    ]
    description = describe_domain(rules, events, domain=target.package)
    spec = parse_connector_file(stage / "connectors" / f"{target.connector}.yaml")
    _, check = check_connector(spec, description, "drafted by cdcflow init")
    rows = {
        t.qualified: {"identity": t.identity, "key_columns": list(t.primary_key)} for t in tables
    }
    captured = {t: rows[t] for t in plan.tables}
    return domain_checks(check, captured, rows)
