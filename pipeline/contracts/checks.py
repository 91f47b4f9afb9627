"""What ``cdcflow schemas generate | check | register`` do, as functions of a :class:`Workspace`.

Every check adds :class:`~pipeline.contracts.report.Problem` values to one
:class:`~pipeline.contracts.report.Report` and goes on, so that one run shows
everything: an unreachable registry or a missing git ref is a problem in the
report, and the offline checks still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contracts.catalog import Contract, contracts_for, discover_events
from pipeline.contracts.compat import Version, check_compatibility
from pipeline.contracts.generate import render, schema_for
from pipeline.contracts.history import GitHistory, HistoryUnavailable
from pipeline.contracts.levels import COMPATIBILITY_FILE, CompatibilityConfig, load_compatibility
from pipeline.contracts.registry import ContractRegistry
from pipeline.contracts.report import Problem, Report, Severity
from pipeline.contracts.schemafile import (
    ParsedSchema,
    json_path,
    parse_schema,
    read_schema_file,
    same_schema,
)
from pipeline.errors import CdcflowError, RegistryError, SchemaContractError
from pipeline.serde.registry import RegistryUnavailable

__all__ = [
    "Action",
    "Workspace",
    "check_against",
    "check_drift",
    "check_registry",
    "generate",
    "load_workspace",
    "read_contracts",
    "register",
]


@dataclass
class Workspace:
    """The contracts of the given domains, where their files are, and their levels."""

    schemas_dir: Path
    config: CompatibilityConfig
    contracts: list[Contract]
    by_path: dict[Path, Contract] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_path = {c.path: c for c in self.contracts}


def load_workspace(domains: Sequence[str], schemas_dir: Path) -> Workspace:
    """Import the domains' event models and read ``<schemas_dir>/compatibility.yaml``.

    Raises:
        ConfigError: a domain cannot be imported, or the compatibility file is invalid.
    """
    config = load_compatibility(schemas_dir / COMPATIBILITY_FILE)
    events = discover_events(domains)
    return Workspace(schemas_dir, config, contracts_for(events, schemas_dir, config))


# -- generate ----------------------------------------------------------------


def generate(ws: Workspace, report: Report) -> list[tuple[Path, str]]:
    """Write every contract's ``.avsc`` (and a default compatibility file if there is none).

    Returns (path, "written" | "unchanged") per file. A model that cannot be
    expressed in Avro is a problem in ``report``; its file is left as it is.
    """
    out: list[tuple[Path, str]] = []
    for contract in ws.contracts:
        try:
            text = render(schema_for(contract.event))
        except SchemaContractError as exc:
            report.add(_contract_error("model-invalid", contract, exc))
            continue
        report.checked.append(str(contract.path))
        old = contract.path.read_text(encoding="utf-8") if contract.path.exists() else None
        if old == text:
            out.append((contract.path, "unchanged"))
            continue
        contract.path.parent.mkdir(parents=True, exist_ok=True)
        contract.path.write_text(text, encoding="utf-8")
        out.append((contract.path, "written"))
    config_file = ws.schemas_dir / COMPATIBILITY_FILE
    if not config_file.exists():
        ws.schemas_dir.mkdir(parents=True, exist_ok=True)
        config_file.write_text(ws.config.to_yaml(), encoding="utf-8")
        out.append((config_file, "written"))
    for path in _orphans(ws):
        report.add(_orphan_problem(path))
    return out


def _about(contract: Contract, rule: str, message: str, **more: Any) -> Problem:
    """A problem of one contract: its file and subject named."""
    return Problem(
        rule=rule, file=str(contract.path), message=message, subject=contract.subject, **more
    )


def _contract_error(rule: str, contract: Contract, exc: CdcflowError) -> Problem:
    return _about(contract, rule, exc.message, hint=exc.hint)


def _orphans(ws: Workspace) -> list[Path]:
    if not ws.schemas_dir.is_dir():
        return []
    return sorted(p for p in ws.schemas_dir.rglob("*.avsc") if p not in ws.by_path)


def _orphan_problem(path: Path) -> Problem:
    return Problem(
        rule="schema-orphaned",
        file=str(path),
        message="no event model generates this contract any more",
        severity=Severity.WARNING,
        hint="events of this type may still be in the topics: keep the file while they are "
        "replayed, or delete it together with its subject",
    )


# -- reading and drift ---------------------------------------------------------


def read_contracts(ws: Workspace, report: Report) -> dict[Path, ParsedSchema]:
    """Parse every ``.avsc`` under the schemas directory; invalid files become problems."""
    files: dict[Path, ParsedSchema] = {}
    if not ws.schemas_dir.is_dir():
        return files
    for path in sorted(ws.schemas_dir.rglob("*.avsc")):
        report.checked.append(str(path))
        try:
            files[path] = read_schema_file(path)
        except SchemaContractError as exc:
            report.add(
                Problem(rule="schema-invalid", file=str(path), message=exc.message, hint=exc.hint)
            )
    return files


def check_drift(ws: Workspace, files: dict[Path, ParsedSchema], report: Report) -> None:
    """Compare each committed contract with what its model generates now."""
    for contract in ws.contracts:
        try:
            expected = schema_for(contract.event)
        except SchemaContractError as exc:
            report.add(_contract_error("model-invalid", contract, exc))
            continue
        parsed = files.get(contract.path)
        if parsed is None:
            if not contract.path.exists():
                report.add(
                    _about(
                        contract,
                        "schema-missing",
                        f"{contract.full_name} has no committed contract",
                        hint="run 'cdcflow schemas generate' and commit schemas/",
                    )
                )
            continue
        differences = _differences(parsed.data, expected, ())
        if differences:
            first = differences[0]
            more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
            report.add(
                _about(
                    contract,
                    "schema-drift",
                    f"the file differs from the model at {json_path(first)}{more}",
                    path=contract.event.__name__,
                    line=parsed.line_of(first),
                    hint="run 'cdcflow schemas generate', review the diff and commit it",
                )
            )
    for path in _orphans(ws):
        report.add(_orphan_problem(path))


def _differences(have: Any, want: Any, path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    if isinstance(have, dict) and isinstance(want, dict):
        out: list[tuple[str | int, ...]] = []
        for key in [*want, *(k for k in have if k not in want)]:
            if key not in have or key not in want:
                out.append((*path, key))
            else:
                out.extend(_differences(have[key], want[key], (*path, key)))
        return out
    if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
        return [
            d
            for i, (a, b) in enumerate(zip(have, want, strict=True))
            for d in _differences(a, b, (*path, i))
        ]
    return [] if have == want else [path]


# -- compatibility -------------------------------------------------------------


def _level_and_subject(ws: Workspace, path: Path) -> tuple[Any, str | None]:
    contract = ws.by_path.get(path)
    if contract is None:
        return ws.config.default, None
    return contract.level, contract.subject


def check_against(
    ws: Workspace,
    files: dict[Path, ParsedSchema],
    ref: str,
    report: Report,
    git: GitHistory | None = None,
) -> None:
    """Check each contract against its version at git ``ref`` (transitive levels: every version)."""
    try:
        git = git or GitHistory()
        git.resolve(ref)
    except HistoryUnavailable as exc:
        report.add(
            Problem(
                rule="history-unavailable",
                file=str(ws.schemas_dir),
                message=exc.message,
                hint=exc.hint,
            )
        )
        return
    if git.is_shallow():
        report.notes.append(
            "shallow clone: transitive levels see only the fetched history "
            "(in CI, check out with fetch-depth: 0)"
        )
    for path, parsed in files.items():
        level, subject = _level_and_subject(ws, path)
        history: list[Version] = []
        for old in git.versions(ref, path, every=level.transitive):
            try:
                history.append(Version(old.label, parse_schema(old.text, f"{path}@{old.label}")))
            except SchemaContractError as exc:
                report.notes.append(f"skipped an invalid earlier version: {exc.message}")
        report.extend(check_compatibility(parsed, history, level, file=str(path), subject=subject))
    for path in git.files(ref, ws.schemas_dir):
        if path not in files and not path.exists():
            report.add(
                Problem(
                    rule="schema-removed",
                    file=str(path),
                    message=f"the contract exists at {ref} and is gone now",
                    severity=Severity.WARNING,
                    against=ref,
                    hint="a renamed event or namespace is a new subject; old events of the "
                    "removed type stay in the topics and need this contract to be read",
                )
            )


def check_registry(
    ws: Workspace, files: dict[Path, ParsedSchema], registry: ContractRegistry, report: Report
) -> None:
    """Check each contract against every version registered for its subject."""
    for contract in ws.contracts:
        parsed = files.get(contract.path)
        if parsed is None:
            continue
        try:
            history = _registered(registry, contract, report)
        except RegistryUnavailable as exc:
            report.add(_unreachable(ws, exc))
            return
        except RegistryError as exc:
            report.add(_contract_error("registry-error", contract, exc))
            continue
        report.extend(
            check_compatibility(
                parsed, history, contract.level, file=str(contract.path), subject=contract.subject
            )
        )


def _registered(registry: ContractRegistry, contract: Contract, report: Report) -> list[Version]:
    history: list[Version] = []
    for version, text in registry.history(contract.subject):
        label = f"registry v{version}"
        try:
            history.append(Version(label, parse_schema(text, f"{contract.subject} {label}")))
        except SchemaContractError as exc:
            report.notes.append(f"skipped a registered version cdcflow cannot parse: {exc.message}")
    return history


def _unreachable(ws: Workspace, exc: RegistryError) -> Problem:
    return Problem(
        rule="registry-unreachable",
        file=str(ws.schemas_dir),
        message=exc.message,
        hint=exc.hint,
    )


# -- register ------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What ``register`` did (or, with ``dry_run``, would do) for one subject."""

    subject: str
    file: str
    outcome: str  # registered | unchanged | refused | level-set | failed
    detail: str = ""

    def text(self) -> str:
        return f"{self.outcome:<10} {self.subject}  {self.detail}".rstrip()


def register(
    ws: Workspace,
    files: dict[Path, ParsedSchema],
    registry: ContractRegistry,
    report: Report,
    *,
    dry_run: bool = False,
) -> list[Action]:
    """Register every contract that is new or changed, and set each subject's level.

    Refuses everything while any contract is missing, invalid or drifted from
    its model (what is registered must be what is produced); refuses one
    subject whose new version is incompatible at its level, with the report of
    why, before anything is sent. Idempotent: a second run finds every
    contract registered and every level set, and changes nothing.

    Order: the shared records (``cdcflow.EventMetadata``, ``SourcePosition``)
    are inlined in every event schema, so no subject references another and
    subjects go in file order. (Were references used, the referenced subjects
    would have to be registered first.)
    """
    check_drift(ws, files, report)
    if report.errors:
        return []
    actions: list[Action] = []
    for contract in ws.contracts:
        parsed = files[contract.path]
        try:
            actions.append(_register_one(contract, parsed, registry, report, dry_run))
        except RegistryUnavailable as exc:
            report.add(_unreachable(ws, exc))
            break
        except RegistryError as exc:
            report.add(_contract_error("registry-error", contract, exc))
            actions.append(Action(contract.subject, str(contract.path), "failed", exc.message))
    return actions


def _register_one(
    contract: Contract,
    parsed: ParsedSchema,
    registry: ContractRegistry,
    report: Report,
    dry_run: bool,
) -> Action:
    versions = _registered(registry, contract, report)
    same = [v.label for v in versions if same_schema(v.schema.data, parsed.data)]
    level = contract.level
    if same and same[-1] != versions[-1].label:
        report.add(
            _about(
                contract,
                "registry-not-latest",
                f"the contract is {same[-1]}, but {versions[-1].label} is newer",
                severity=Severity.WARNING,
                hint="producers keep writing the contract's version; check with "
                "'cdcflow schemas check --registry' who registered the newer one",
            )
        )
    if same:
        if registry.level(contract.subject) != level:
            if not dry_run:
                registry.set_level(contract.subject, level)
            detail = f"{level.value} ({same[-1]})"
            return Action(contract.subject, str(contract.path), "level-set", detail)
        detail = f"{same[-1]}, {level.value}"
        return Action(contract.subject, str(contract.path), "unchanged", detail)
    problems = check_compatibility(
        parsed, versions, level, file=str(contract.path), subject=contract.subject
    )
    report.extend(problems)
    if any(p.severity is Severity.ERROR for p in problems):
        return Action(
            contract.subject, str(contract.path), "refused", f"incompatible at {level.value}"
        )
    if dry_run:
        return Action(
            contract.subject, str(contract.path), "registered", f"(dry run) {level.value}"
        )
    # An existing subject gets its level first, so the registry enforces it on
    # this very registration; a new subject has nothing to set a level on yet.
    if versions:
        registry.set_level(contract.subject, level)
    schema_id, new_version = registry.register(contract.subject, parsed.text)
    if not versions:
        registry.set_level(contract.subject, level)
    shown = f"version {new_version}" if new_version else "new version"
    return Action(
        contract.subject,
        str(contract.path),
        "registered",
        f"{shown} (id {schema_id}), {level.value}",
    )
