"""Shared state of one CLI invocation: settings (loaded once, lazily) and output."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from pipeline.settings import Settings, load_settings


@dataclass
class CliContext:
    config_file: str | None = None
    output: str | None = None
    log_level: int = logging.WARNING
    _settings: Settings | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        logging.basicConfig(
            level=self.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file or _project_file())
            if self.log_level == logging.WARNING and self._settings.log_level != "INFO":
                logging.getLogger().setLevel(self._settings.log_level)
        return self._settings

    @property
    def json_output(self) -> bool:
        if self.output is not None:
            return self.output == "json"
        return self.settings.output == "json"

    def emit_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


pass_cli = click.make_pass_decorator(CliContext)

# ``--domain MODULE`` of the commands that run or inspect one domain's rules.
domain_option = click.option(
    "--domain",
    default=None,
    metavar="MODULE",
    help="Module that declares the mapping rules (default: transformer.domain).",
)

PROJECT_FILE = "cdcflow.toml"


def _project_file() -> str | None:
    """The project's settings file in the working directory (as ``cdcflow init`` writes it).

    Taken when neither ``--config`` nor ``CDCFLOW_CONFIG`` names one.
    """
    if os.environ.get("CDCFLOW_CONFIG"):
        return None
    return PROJECT_FILE if os.path.isfile(PROJECT_FILE) else None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (no colour: colour is added by callers on a tty)."""
    widths = {c: len(c) for c in columns}
    for row in rows:
        for c in columns:
            widths[c] = max(widths[c], len(str(row.get(c, ""))))
    head = "  ".join(c.upper().ljust(widths[c]) for c in columns)
    body = [
        "  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip() for row in rows
    ]
    return "\n".join([head.rstrip(), *body])
