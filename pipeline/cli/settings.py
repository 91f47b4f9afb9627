"""``cdcflow settings``: every setting, its environment variable and current value."""

from __future__ import annotations

from typing import Any

import click
from pydantic import BaseModel, SecretStr

from pipeline.cli._context import CliContext, pass_cli, table
from pipeline.settings import ENV_PREFIX

_SECRET_HINTS = ("password", "secret", "token", "credentials", "basic.auth")


def _rows(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = (*prefix, name)
        if isinstance(value, BaseModel):
            rows.extend(_rows(value, path))
            continue
        shown: Any = value
        if isinstance(value, SecretStr):
            shown = "********"
        elif isinstance(value, dict):
            # librdkafka properties may hold sasl.password, ssl.key.password, ...
            shown = {
                k: "********" if any(s in k for s in _SECRET_HINTS) else v for k, v in value.items()
            }
        rows.append(
            {
                "setting": ".".join(path),
                "env": ENV_PREFIX + "__".join(p.upper() for p in path),
                "value": shown,
                "description": info.description or "",
            }
        )
    return rows


@click.command(name="settings")
@pass_cli
def command(ctx: CliContext) -> None:
    """Show every setting: its name, environment variable and current value.

    \b
    Values come from CDCFLOW_* environment variables (nested levels joined by
    '__', e.g. CDCFLOW_KAFKA__BOOTSTRAP_SERVERS) over an optional settings
    file (--config, TOML or YAML, same nesting). Secrets are masked.
    """
    rows = _rows(ctx.settings)
    if ctx.json_output:
        ctx.emit_json(rows)
    else:
        click.echo(table(rows, ["setting", "env", "value", "description"]))
