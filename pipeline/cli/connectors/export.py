"""``cdcflow connectors export``: the connector files as Kubernetes resources.

Attached to the ``connectors`` group (:mod:`pipeline.cli.connectors`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pipeline.cli._context import CliContext, pass_cli
from pipeline.cli.connectors import _common as common
from pipeline.connect.export import StrimziOptions, render, strimzi_resources, write_files
from pipeline.stack.versions import load_versions

__all__ = ["export"]

_DEFAULTS = StrimziOptions()

# The options of StrimziOptions, one --flag each (its name with dashes), defaulting to its
# default: the field and its help, in the order of --help.
_STRIMZI_FLAGS = {
    "connect_name": "Name of the KafkaConnect resource (also its group.id and topic prefix).",
    "replicas": "Connect worker pods.",
    "bootstrap_servers": "Kafka as the Connect pods reach it.",
    "tls_ca_secret": "Secret with the Kafka cluster's CA (key ca.crt); '' for a plain listener.",
    "kafka_user": "Authenticate with SCRAM-SHA-512 as this Strimzi KafkaUser "
    "(its Secret holds 'password').",
    "image": "Where Strimzi pushes the built Connect image; "
    "{kafka} and {debezium} are the pinned versions.",
    "push_secret": "Secret with the credentials to push --image.",
    "secret_name": "Secret holding the values of the connectors' "
    "${env:...} and ${file:...} placeholders.",
}
_STRIMZI_TYPES: dict[str, click.IntRange] = {"replicas": click.IntRange(min=1)}


def _strimzi_options(func: Callable[..., None]) -> Callable[..., None]:
    for field, help_text in reversed(_STRIMZI_FLAGS.items()):
        default = getattr(_DEFAULTS, field)
        func = click.option(
            "--" + field.replace("_", "-"),
            field,
            type=_STRIMZI_TYPES.get(field),
            default=default,
            show_default=default is not None,
            help=help_text,
        )(func)
    return func


def _command_line(ctx: click.Context) -> str:
    """The invocation, with the options that were given: recorded in each file's header."""
    words = ["cdcflow", "connectors", "export"]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) is ParameterSource.DEFAULT:
            continue
        value = ctx.params[param.name]
        flag = max(param.opts, key=len)
        if param.is_flag:
            words.append(flag)
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


@common.command.command("export")
@common.files_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["strimzi"]),
    required=True,
    help="strimzi: a KafkaConnect (with a build adding the plugins) "
    "and a KafkaConnector per connector.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one file per resource here, removing generated files of connectors that are gone "
    "(default: print every resource to stdout).",
)
@_strimzi_options
@pass_cli
@click.pass_context
def export(
    click_ctx: click.Context,
    ctx: CliContext,
    /,
    directory: Path | None,
    environment: str | None,
    fmt: str,
    output_dir: Path | None,
    **strimzi: Any,
) -> None:
    """Generate Kubernetes resources from the connector files (overlays applied).

    \b
    --format strimzi writes a KafkaConnect whose build adds the connector
    plugins at the versions pinned in deploy/local/pom.xml, with Kafka's env
    and file config providers enabled, and one KafkaConnector per connector.
    ${env:NAME} and ${file:/mnt/...:key} placeholders are kept as they are:
    the KafkaConnect takes NAME and the files from one Secret (--secret-name),
    which is not generated and holds the values. Nothing is sent anywhere.
    """
    specs = common.specs(ctx, directory, environment)
    common.warn_plain_secrets(specs)
    versions = load_versions()
    # An empty --tls-ca-secret is a plain listener.
    options = StrimziOptions(**{**strimzi, "tls_ca_secret": strimzi["tls_ca_secret"] or None})
    files = strimzi_resources(
        specs, kafka_version=versions.kafka, debezium_version=versions.debezium, options=options
    )
    command_line = _command_line(click_ctx)
    by_name = {f"kafkaconnector-{s.name}.yaml": s for s in specs}
    texts = {}
    for file in files:
        spec = by_name.get(file.name)
        sources = [str(p) for p in (spec.source, spec.overlay) if p] if spec else []
        texts[file.name] = render(file, command_line, sources)
    if output_dir is None:
        click.echo("---\n".join(texts.values()), nl=False)
        return
    for path in write_files(output_dir, texts):
        click.echo(f"wrote {path}", err=True)
