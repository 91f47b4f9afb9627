"""The ``cdcflow`` command line: parse, call the modules, map errors to exit codes.

Each command group lives in its own module in this package and exposes a click
command named ``command``; :func:`main` discovers them, so a new group is one
new file. Exit codes: 0 success (or nothing to change), 1 an error, 2 changes
pending (``connectors plan``) or a usage error, 78 bad configuration,
130 interrupted.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
from typing import Any

import click

from pipeline import __version__
from pipeline.cli._context import CliContext
from pipeline.errors import CdcflowError

__all__ = ["cli", "main"]


class _LazyGroup(click.Group):
    """Imports a command's module when the command is asked for.

    ``cdcflow run`` then loads what running needs, not every other command's
    dependencies (the contract tooling, the connector files, ``init``). A
    command named like its module is found at once; the others (and
    ``--help``) load every module.
    """

    _all_loaded = False

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"{__name__}.{module_name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command) and command.name not in self.commands:
            self.add_command(command)

    def _load_all(self) -> None:
        if not self._all_loaded:
            package = sys.modules[__name__]
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                if not info.name.startswith("_"):
                    self._load(info.name)
            self._all_loaded = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if (
            cmd_name not in self.commands
            and cmd_name.isidentifier()
            and importlib.util.find_spec(f"{__name__}.{cmd_name}") is not None
        ):
            self._load(cmd_name)
        if cmd_name not in self.commands:
            self._load_all()
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return sorted(self.commands)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="cdcflow")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="CDCFLOW_CONFIG",
    help="Settings file (TOML or YAML). Environment variables CDCFLOW_* override it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Output for people (text, the default) or for machines (json).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, output: str | None, verbose: int) -> None:
    """cdcflow turns PostgreSQL row changes captured by Debezium into Avro domain events.

    \b
    Settings come from CDCFLOW_* environment variables and an optional
    settings file (--config); every command validates them before it
    connects anywhere.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    ctx.obj = CliContext(config_file=config_file, output=output, log_level=level)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``cdcflow`` console script.

    The working directory is put on the import path, as ``python -m`` does:
    ``--domain mypkg`` finds a domain package in the project directory the
    command runs in, without installing it.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return cli.main(args=argv, prog_name="cdcflow", standalone_mode=False)
    except CdcflowError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
