"""Connectors as code: the Kafka Connect REST client, plan / apply / prune, preflight.

``files`` reads the declared connectors (and overlays), ``plan`` diffs them
against the deployed ones, ``validate`` and ``preflight`` check before
anything changes, ``apply`` runs the protocol, ``status`` and ``lifecycle``
observe and wait. ``capture`` says which tables a connector captures,
``transforms`` where its transforms send each table's records, ``routing``
checks that against a domain; ``signals`` derives a backfill's signal channel
and ``snapshot`` runs a backfill. ``client`` is the only module that speaks
HTTP; ``pg`` opens every connection to the source database.
"""

from pipeline.connect.apply import ApplyResult, apply, deployed_configs, plan
from pipeline.connect.checks import Check, Level, PreflightReport
from pipeline.connect.client import CallableTransport, ConnectClient
from pipeline.connect.files import ConnectorSpec, load_connectors, parse_connector_file
from pipeline.connect.lifecycle import ConnectorFailed, ConnectorNotReady, wait_for_state
from pipeline.connect.plan import Action, ConnectorChange, FieldChange, Plan, compute_plan
from pipeline.connect.preflight import run_preflight
from pipeline.connect.remove import Removal, remove_connector
from pipeline.connect.secrets import MASK, Redactor
from pipeline.connect.status import ConnectorStatus, TaskStatus, collect_status
from pipeline.connect.validate import ValidationResult, validate_connector, validate_connectors

__all__ = [
    "MASK",
    "Action",
    "ApplyResult",
    "CallableTransport",
    "Check",
    "ConnectClient",
    "ConnectorChange",
    "ConnectorFailed",
    "ConnectorNotReady",
    "ConnectorSpec",
    "ConnectorStatus",
    "FieldChange",
    "Level",
    "Plan",
    "PreflightReport",
    "Redactor",
    "Removal",
    "TaskStatus",
    "ValidationResult",
    "apply",
    "collect_status",
    "compute_plan",
    "deployed_configs",
    "load_connectors",
    "parse_connector_file",
    "plan",
    "remove_connector",
    "run_preflight",
    "validate_connector",
    "validate_connectors",
    "wait_for_state",
]
