"""``cdcflow connectors export``: the connector files as Kubernetes resources.

Attached to the ``connectors`` group (:mod:`pipeline.cli.connectors`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
from click.core import ParameterSource

from pipeline.cli._context import CliContext, pass_cli
from pipeline.cli.connectors import _common as common
from pipeline.connect.export import StrimziOptions, render, strimzi_resources, write_files
from pipeline.stack.versions import load_versions

__all__ = ["export"]

_DEFAULTS = StrimziOptions()


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
@click.option(
    "--connect-name",
    default=_DEFAULTS.connect_name,
    show_default=True,
    help="Name of the KafkaConnect resource (also its group.id and topic prefix).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=_DEFAULTS.replicas,
    show_default=True,
    help="Connect worker pods.",
)
@click.option(
    "--bootstrap-servers",
    default=_DEFAULTS.bootstrap_servers,
    show_default=True,
    help="Kafka as the Connect pods reach it.",
)
@click.option(
    "--tls-ca-secret",
    default=_DEFAULTS.tls_ca_secret,
    show_default=True,
    help="Secret with the Kafka cluster's CA (key ca.crt); '' for a plain listener.",
)
@click.option(
    "--kafka-user",
    default=None,
    help="Authenticate with SCRAM-SHA-512 as this Strimzi KafkaUser (its Secret holds 'password').",
)
@click.option(
    "--image",
    default=_DEFAULTS.image,
    show_default=True,
    help="Where Strimzi pushes the built Connect image; "
    "{kafka} and {debezium} are the pinned versions.",
)
@click.option("--push-secret", default=None, help="Secret with the credentials to push --image.")
@click.option(
    "--secret-name",
    default=_DEFAULTS.secret_name,
    show_default=True,
    help="Secret holding the values of the connectors' ${env:...} and ${file:...} placeholders.",
)
@pass_cli
@click.pass_context
def export(
    click_ctx: click.Context,
    ctx: CliContext,
    directory: Path | None,
    environment: str | None,
    fmt: str,
    output_dir: Path | None,
    connect_name: str,
    replicas: int,
    bootstrap_servers: str,
    tls_ca_secret: str,
    kafka_user: str | None,
    image: str,
    push_secret: str | None,
    secret_name: str,
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
    options = StrimziOptions(
        connect_name=connect_name,
        replicas=replicas,
        bootstrap_servers=bootstrap_servers,
        tls_ca_secret=tls_ca_secret or None,
        kafka_user=kafka_user,
        image=image,
        push_secret=push_secret,
        secret_name=secret_name,
    )
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
