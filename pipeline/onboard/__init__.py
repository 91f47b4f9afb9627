"""``cdcflow init``: from a live PostgreSQL database to the draft of a cdcflow project.

:mod:`~pipeline.onboard.catalog` reads the tables, :mod:`~pipeline.onboard.types`
maps column types to event field types, :mod:`~pipeline.onboard.plan` drafts the
domain, :mod:`~pipeline.onboard.render` writes its files' text and
:mod:`~pipeline.onboard.project` stages, checks and writes them.
"""

from pipeline.onboard.catalog import Column, Table, connect, read_tables
from pipeline.onboard.plan import Note, Plan, plan_domain
from pipeline.onboard.project import InitResult, ProjectExists, draft_project
from pipeline.onboard.render import Target, render_files
from pipeline.onboard.types import FieldType, field_type

__all__ = [
    "Column",
    "FieldType",
    "InitResult",
    "Note",
    "Plan",
    "ProjectExists",
    "Table",
    "Target",
    "connect",
    "draft_project",
    "field_type",
    "plan_domain",
    "read_tables",
    "render_files",
]
