"""Schema contracts: ``.avsc`` files generated from the event models, checked for compatibility.

- :mod:`~pipeline.contracts.catalog` — each event type's contract: topic, subject, file, level
  (naming itself is run-time code: :mod:`pipeline.events.naming`).
- :mod:`~pipeline.contracts.generate` — pydantic event model -> Avro schema.
- :mod:`~pipeline.contracts.schemafile` — reading ``.avsc`` text with error positions.
- :mod:`~pipeline.contracts.levels` — compatibility levels and ``schemas/compatibility.yaml``.
- :mod:`~pipeline.contracts.compat` — Apache Avro's checker, findings made readable.
- :mod:`~pipeline.contracts.report` — problems, rule ids, text / JSON / GitHub output.
- :mod:`~pipeline.contracts.history` / :mod:`~pipeline.contracts.registry` — earlier
  versions from git and from the registry.
- :mod:`~pipeline.contracts.checks` — generate, check and register, as the CLI runs them.
- :mod:`~pipeline.contracts.source` — the live source tables against what the rules read.
"""

from pipeline.contracts.catalog import Contract, contracts_for, discover_events
from pipeline.contracts.compat import Version, check_compatibility, is_compatible
from pipeline.contracts.generate import SHARED_NAMESPACE, canonical, render, schema_for
from pipeline.contracts.levels import (
    COMPATIBILITY_FILE,
    DEFAULT_LEVEL,
    CompatibilityConfig,
    Direction,
    Level,
    load_compatibility,
    parse_level,
)
from pipeline.contracts.registry import ContractRegistry
from pipeline.contracts.report import RULES, Problem, Report, Severity, format_report
from pipeline.contracts.schemafile import ParsedSchema, parse_schema, read_schema_file
from pipeline.contracts.translate import describe
from pipeline.events.naming import (
    event_domain,
    event_subject,
    event_topic,
    schema_path,
    subject_name,
)

__all__ = [
    "COMPATIBILITY_FILE",
    "DEFAULT_LEVEL",
    "RULES",
    "SHARED_NAMESPACE",
    "CompatibilityConfig",
    "Contract",
    "ContractRegistry",
    "Direction",
    "Level",
    "ParsedSchema",
    "Problem",
    "Report",
    "Severity",
    "Version",
    "canonical",
    "check_compatibility",
    "contracts_for",
    "describe",
    "discover_events",
    "event_domain",
    "event_subject",
    "event_topic",
    "format_report",
    "is_compatible",
    "load_compatibility",
    "parse_level",
    "parse_schema",
    "read_schema_file",
    "render",
    "schema_for",
    "schema_path",
    "subject_name",
]
