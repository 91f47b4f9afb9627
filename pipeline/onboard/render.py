"""The text of every file ``cdcflow init`` writes, from a :class:`~pipeline.onboard.plan.Plan` (pure).

Files (paths relative to the project directory)::

    cdcflow.toml                     the settings that tie domain, topics and connector together
    connectors/<name>-postgres.yaml  the Debezium connector
    <package>/__init__.py            the domain package: what it holds
    <package>/events.py              one event model per table and change kind
    <package>/rules.yaml             the one-to-one rules
    <package>/mappings.py            the registry: rules.yaml, plus Python rules where a
                                     value is converted (json, interval, numeric without scale)

The text of the last two comes from :mod:`pipeline.onboard.render_rules`.

The ``.avsc`` contracts are generated from the written models afterwards
(:func:`pipeline.onboard.project.generate_contracts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.onboard.plan import Entity, EventField, Plan
from pipeline.onboard.render_rules import HEADER, WIDTH, listing, mappings_text, rules_yaml_text

__all__ = ["Target", "render_files"]


@dataclass(frozen=True)
class Target:
    """Where the project's connector reads from and writes to."""

    package: str
    host: str
    port: int
    database: str
    user: str
    """The login the transformer reads the catalogue with (replica identities)."""
    password_file: str | None
    connector_user: str
    connector_password: str
    """A config-provider placeholder, e.g. ``${env:PGPASSWORD_DEBEZIUM}``; never the secret."""
    schemas: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return self.package

    @property
    def connector(self) -> str:
        return f"{self.package.replace('_', '-')}-postgres"


def render_files(plan: Plan, target: Target) -> dict[str, str]:
    """Every file's path (relative, with ``/``) and text."""
    pkg = target.package
    files = {
        "cdcflow.toml": _settings(plan, target),
        f"connectors/{target.connector}.yaml": _connector(plan, target),
        f"{pkg}/__init__.py": _package_doc(plan, target),
        f"{pkg}/events.py": _events(plan),
        f"{pkg}/mappings.py": mappings_text(plan, target),
    }
    yaml_text = rules_yaml_text(plan, target)
    if yaml_text:
        files[f"{pkg}/rules.yaml"] = yaml_text
    return files


def topics_regex(plan: Plan, target: Target) -> str:
    schemas = sorted({e.table.schema for e in plan.entities})
    group = schemas[0] if len(schemas) == 1 else "(" + "|".join(schemas) + ")"
    return rf"^{_escape(target.prefix)}\.{group}\..*"


def _escape(text: str) -> str:
    return text.replace(".", r"\.")


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string


def _settings(plan: Plan, target: Target) -> str:
    pkg = target.package
    password = (
        f"password_file = {_toml_str(target.password_file)}"
        if target.password_file
        else "# password: never written here; set CDCFLOW_SOURCE__PASSWORD"
    )
    return f"""\
# cdcflow settings of the {pkg} project. {HEADER}
#
# Found by every cdcflow command run in this directory (or name it with
# --config). CDCFLOW_* environment variables override it; `cdcflow settings`
# lists every setting.

[transformer]
# The domain package: its event models and rules.
domain = {_toml_str(pkg)}
# The CDC topics the connector in connectors/ writes (topic.prefix {target.prefix}).
topics = {_toml_str(topics_regex(plan, target))}
group_id = "{pkg}-transformer"
transactional_id = "{pkg}-transformer"
dead_letter_topic = "{pkg}.dlq"
schemas_dir = "schemas"

[connect]
connectors_dir = "connectors"

[source]
# The source database, as cdcflow reads its catalogue (replica identities).
host = {_toml_str(target.host)}
port = {target.port}
database = {_toml_str(target.database)}
user = {_toml_str(target.user)}
{password}

[projections]
modules = []
"""


def _connector(plan: Plan, target: Target) -> str:
    tables = "\n".join(f"    - {t}" for t in plan.tables)
    return f"""\
# The Debezium connector of the {target.package} project. {HEADER}
#
# Deploy it with `cdcflow connectors apply --wait` (`cdcflow connectors plan`
# shows the change first, `cdcflow connectors preflight` checks the database).
# The password is a placeholder that Kafka's config providers resolve on the
# Connect worker: the secret is never in this file, in Connect's config topic
# or in its REST answers.
name: {target.connector}
# The domain its changes feed; cdcflow derives the routing that keeps each
# aggregate's changes in one ordered stream (`connectors plan` shows it).
domain: {target.package}
routing: derive
config:
  connector.class: io.debezium.connector.postgresql.PostgresConnector
  # One replication slot is one stream: never more than one task.
  tasks.max: 1

  # --- The source database, as the Connect worker reaches it
  database.hostname: {target.host}
  database.port: {target.port}
  database.dbname: {target.database}
  # A login with REPLICATION that owns the tables (or shares their owner's role).
  database.user: {target.connector_user}
  database.password: {target.connector_password}

  # --- Topics: {target.prefix}.<schema>.<table> (cdcflow.toml: transformer.topics)
  topic.prefix: {target.prefix}
  topic.creation.default.partitions: 4
  topic.creation.default.replication.factor: -1

  # --- Logical decoding: pgoutput is built into PostgreSQL 10+
  plugin.name: pgoutput
  # A slot and a publication of this connector's own; the slot is kept when
  # the connector stops (drop it with `cdcflow connectors delete --drop-slot`).
  slot.name: cdcflow_{target.package}
  slot.drop.on.stop: false
  publication.name: cdcflow_{target.package}
  # Exactly the captured tables: no superuser needed.
  publication.autocreate.mode: filtered

  # --- What is captured
  table.include.list:
{tables}
  snapshot.mode: initial

  # --- Heartbeats: every 10 s the connector confirms its position; the action
  # writes a logical decoding message (no table needed), so the slot moves on
  # while the captured tables are quiet and PostgreSQL can free its WAL.
  heartbeat.interval.ms: 10000
  heartbeat.action.query: SELECT pg_logical_emit_message(false, 'cdcflow-heartbeat', now()::text)
  message.prefix.exclude.list: cdcflow-heartbeat

  # --- Record format: JSON with the schema in every record (the transformer
  # decodes decimals, times and enums from it)
  key.converter: org.apache.kafka.connect.json.JsonConverter
  key.converter.schemas.enable: true
  value.converter: org.apache.kafka.connect.json.JsonConverter
  value.converter.schemas.enable: true

  # --- Value handling: the event field types in {target.package}/events.py depend on these
  decimal.handling.mode: precise
  time.precision.mode: adaptive_time_microseconds
  interval.handling.mode: string
  hstore.handling.mode: json
  binary.handling.mode: bytes

  # --- A delete is one op=d record, no tombstone after it
  tombstones.on.delete: false
"""


def _package_doc(plan: Plan, target: Target) -> str:
    width = max(len(e.table.qualified) for e in plan.entities) + 2
    agg_width = max(len("aggregate"), *(len(e.aggregate) for e in plan.entities)) + 2
    rows = "\n".join(
        f"{e.table.qualified:<{width}}{e.aggregate:<{agg_width}}{e.entity}Created / Updated / Deleted"
        for e in plan.entities
    )
    return f'''\
"""The {target.package} domain. {HEADER}

Source database {target.database}; one aggregate per table, its topic
``{plan.name}.<aggregate>.events``:

{"table":<{width}}{"aggregate":<{agg_width}}events
{rows}

``events`` holds the event models (their ``.avsc`` contracts are in
``schemas/``: run ``cdcflow schemas generate`` after changing a model),
``rules.yaml`` and ``mappings`` the rules that make them from row changes;
``domain`` ties them together (``cdcflow run --domain {target.package}``, the
``transformer.domain`` of ``cdcflow.toml``).
"""

from pipeline import Domain

from {target.package} import events
from {target.package}.mappings import rules

__all__ = ["domain", "rules"]

domain = Domain({json.dumps(plan.name)}, events=events, rules=rules)
'''


def _events(plan: Plan) -> str:
    names: set[str] = set()
    for entity in plan.entities:
        for event in entity.events:
            for f in event.fields:
                names |= f.type.imports
    imports = ["from __future__ import annotations", ""]
    dt = sorted(n for n in names if n in ("date", "datetime", "time"))
    if dt:
        imports.append(f"from datetime import {', '.join(dt)}")
    if "Decimal" in names or _any(plan, lambda f: f.type.decimal is not None):
        imports.append("from decimal import Decimal")
    typing = ["ClassVar"]
    if _any(plan, lambda f: f.type.decimal is not None):
        typing.insert(0, "Annotated")
    if plan.enums:
        typing.append("Literal")
    imports.append(f"from typing import {', '.join(typing)}")
    if "UUID" in names:
        imports.append("from uuid import UUID")
    imports += ["", "from pipeline import DomainEvent", "from pydantic import Field"]
    all_names = sorted([ev.name for e in plan.entities for ev in e.events] + list(plan.enums))
    out = [
        f'"""Domain events of {plan.name}: one per table and change kind.',
        "",
        HEADER,
        "",
        "Field types follow the column types (pipeline/onboard/types.py explains each);",
        "a nullable column is an optional field. Rename events and fields to your",
        "domain's words, drop what consumers need not see, then `cdcflow schemas generate`.",
        '"""',
        "",
        *imports,
        "",
        *listing("__all__ = [", [json.dumps(n) for n in all_names], "]"),
        "",
    ]
    for alias, labels in plan.enums.items():
        out += listing(f"{alias} = Literal[", [json.dumps(label) for label in labels], "]")
    out += [
        "",
        "",
        f"class _{_pascal_name(plan.name)}Event(DomainEvent):",
        f"    __namespace__: ClassVar[str] = {json.dumps(plan.name + '.events')}",
    ]
    base = f"_{_pascal_name(plan.name)}Event"
    for entity in plan.entities:
        out += _entity_events(entity, base)
    return "\n".join(out) + "\n"


def _pascal_name(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def _any(plan: Plan, test: object) -> bool:
    assert callable(test)
    return any(test(f) for e in plan.entities for ev in e.events for f in ev.fields)


_WHAT = {
    "Created": "A row of {table} was inserted (or read by the snapshot).",
    "Updated": "A row of {table} was updated: the row as it is now.",
    "Deleted": "A row of {table} was deleted: its key.",
}


def _entity_events(entity: Entity, base: str) -> list[str]:
    group = f"_{entity.entity}Event"
    out = [
        "",
        "",
        f"# -- {entity.table.qualified}",
        "",
        "",
        f"class {group}({base}):",
        f"    __aggregate__: ClassVar[str] = {json.dumps(entity.aggregate)}",
        f"    __aggregate_id__: ClassVar[str] = {json.dumps(entity.id_field)}",
    ]
    for event in entity.events:
        out += [
            "",
            "",
            f"class {event.name}({group}):",
            f'    """{_WHAT[event.kind].format(table=entity.table.qualified)}"""',
            "",
        ]
        out += [f"    {_field_line(f)}" for f in event.fields]
    return out


def _field_line(f: EventField) -> str:
    t = f.type
    annotation = t.annotation
    if t.decimal is not None:
        annotation = (
            f"Annotated[Decimal, Field(max_digits={t.decimal[0]}, decimal_places={t.decimal[1]})]"
        )
    description = f"{f.column.name} ({f.column.sql_type})"
    if t.note:
        description += f": {t.note}"
    head = f"{f.name}: {annotation} | None" if f.optional else f"{f.name}: {annotation}"
    args = ("default=None, " if f.optional else "") + f"description={json.dumps(description)}"
    line = f"{head} = Field({args})"
    if len(line) <= WIDTH - 4:
        return line
    return f"{head} = Field(\n        {args}\n    )"
