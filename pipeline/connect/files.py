"""Connector files: one connector per file, YAML or JSON, with environment overlays.

A file has the shape of Connect's own ``POST /connectors`` body::

    name: shop-postgres
    config:
      connector.class: io.debezium.connector.postgresql.PostgresConnector
      table.include.list:          # a list is joined with commas
        - public.customers
        - public.orders

Every value becomes the string Connect stores. Scalars are taken exactly as
written (``0755``, ``on`` and ``1e3`` stay those characters, not the number or
boolean YAML 1.1 would make of them), so what is reviewed is what is deployed.

An overlay ``<dir>/overlays/<env>/<stem>.yaml`` (or ``.yml`` / ``.json``)
applies over the base file with the same stem: its ``config`` keys replace the
base's, a key set to ``null`` removes it, and an optional ``name`` renames the
connector. An overlay without a base file, or an environment without an
overlay directory, is an error: a typo must not deploy the base config to prod.

A file that names a signal table (``signal.data.collection``) gets the keys a
backfill needs derived from it (:mod:`pipeline.connect.signals`), marked in
``derived``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.connect.signals import SIGNAL_KEY, derive_signals
from pipeline.errors import ConfigError

__all__ = ["ConnectorSpec", "load_connectors", "parse_connector_file"]

SUFFIXES = (".yaml", ".yml", ".json")
_TOP_LEVEL = ("name", "config", "domain", "routing")
ROUTING_MODES = ("check", "derive")


@dataclass(frozen=True)
class ConnectorSpec:
    """One declared connector, overlay applied: what cdcflow wants deployed.

    ``config`` holds Connect's strings without ``name`` (the server adds that);
    ``origin`` says for each key the ``file:line`` its value came from.
    ``domain`` is the module of the domain its changes feed (``None``: the
    transformer's, when the connector's topics are the ones it reads), and
    ``routing`` whether cdcflow only checks the routing against the domain
    (``check``) or derives it (``derive``); ``derived`` says, for each key
    cdcflow added, why.
    """

    name: str
    config: Mapping[str, str]
    source: Path
    overlay: Path | None = None
    origin: Mapping[str, str] = field(default_factory=dict)
    domain: str | None = None
    routing: str = "check"
    derived: Mapping[str, str] = field(default_factory=dict)

    @property
    def connector_class(self) -> str:
        return self.config["connector.class"]

    def where(self, key: str) -> str:
        """``file:line`` of a key's value, or the file when the key is not in it."""
        return self.origin.get(key, str(self.overlay or self.source))


# ---------------------------------------------------------------------------
# A neutral tree of what a file holds, with line numbers, for YAML and JSON.


@dataclass
class _Node:
    line: int | None


@dataclass
class _Scalar(_Node):
    text: str | None  # None: null


@dataclass
class _Seq(_Node):
    items: list[_Node]


@dataclass
class _Map(_Node):
    entries: list[tuple[str, int | None, _Node]]


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def _from_yaml(text: str, path: Path) -> _Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            hint="fix the syntax at that line (indentation, a missing ':' or quote)",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return None if root is None else _convert_yaml(root, path)


def _convert_yaml(node: yaml.Node, path: Path) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        is_null = node.tag == "tag:yaml.org,2002:null"
        return _Scalar(line, None if is_null else str(node.value))
    if isinstance(node, yaml.SequenceNode):
        return _Seq(line, [_convert_yaml(item, path) for item in node.value])
    if isinstance(node, yaml.MappingNode):
        entries: list[tuple[str, int | None, _Node]] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{path}:{key_line}: a key must be a plain string")
            entries.append((str(key_node.value), key_line, _convert_yaml(value_node, path)))
        return _Map(line, entries)
    raise ConfigError(f"{path}:{line}: unsupported YAML node")  # pragma: no cover


def _from_json(text: str, path: Path) -> _Node | None:
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _JsonPairs(pairs))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}",
            hint="fix the syntax at that line (a trailing comma, a missing quote or brace)",
        ) from exc
    lines = text.splitlines()
    return _convert_json(data, lines, [0])


class _JsonPairs(list[tuple[str, Any]]):
    """The key/value pairs of one JSON object, in order, duplicates kept."""


def _json_key_line(lines: list[str], key: str, cursor: list[int]) -> int | None:
    # json reports no positions for keys: find the key's text, searching
    # forward from the previous key so repeated names map to their own line.
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    for index in range(cursor[0], len(lines)):
        if pattern.search(lines[index]):
            cursor[0] = index
            return index + 1
    return None


def _convert_json(
    value: Any, lines: list[str], cursor: list[int], line: int | None = None
) -> _Node:
    if isinstance(value, _JsonPairs):
        entries: list[tuple[str, int | None, _Node]] = []
        for key, item in value:
            key_line = _json_key_line(lines, key, cursor)
            entries.append((key, key_line, _convert_json(item, lines, cursor, key_line)))
        return _Map(line, entries)
    if isinstance(value, list):
        return _Seq(line, [_convert_json(item, lines, cursor, line) for item in value])
    if value is None:
        return _Scalar(line, None)
    if isinstance(value, bool):
        return _Scalar(line, "true" if value else "false")
    if isinstance(value, str):
        return _Scalar(line, value)
    return _Scalar(line, json.dumps(value))


# ---------------------------------------------------------------------------
# From the tree to a connector.


@dataclass
class _Parsed:
    path: Path
    name: str | None
    config: dict[str, str | None]
    origin: dict[str, str]
    domain: str | None = None
    routing: str | None = None


def _config_value(key: str, node: _Node, path: Path, line: int | None) -> str | None:
    if isinstance(node, _Scalar):
        return node.text
    if isinstance(node, _Seq):
        parts: list[str] = []
        for item in node.items:
            if not isinstance(item, _Scalar) or item.text is None:
                raise ConfigError(
                    f"{_where(path, item.line or line)}: key {key!r}: a list may hold only "
                    "plain values (it is joined with commas)"
                )
            parts.append(item.text)
        return ",".join(parts)
    raise ConfigError(
        f"{_where(path, line)}: key {key!r}: nested mappings are not connector config",
        hint=f"write dotted keys instead, e.g. '{key}.<property>: value'",
    )


def _parse(root: _Node | None, path: Path, *, overlay: bool) -> _Parsed:
    kind = "overlay" if overlay else "connector file"
    if not isinstance(root, _Map):
        raise ConfigError(
            f"{path}: a {kind} must be a mapping with 'name' and 'config'",
            hint="see connectors/README.md for the file format",
        )
    seen: dict[str, int | None] = {}
    name: str | None = None
    extra: dict[str, str] = {}
    config_node: _Map | None = None
    for key, line, node in root.entries:
        if key in seen:
            raise ConfigError(
                f"{_where(path, line)}: key {key!r} given twice (also line {seen[key]})"
            )
        seen[key] = line
        if key not in _TOP_LEVEL:
            raise ConfigError(
                f"{_where(path, line)}: unknown key {key!r}",
                hint="a connector file holds 'name', 'config' and optionally 'domain' "
                "and 'routing'",
            )
        if key in ("domain", "routing"):
            if not isinstance(node, _Scalar) or not node.text:
                raise ConfigError(f"{_where(path, line)}: key {key!r} must be a non-empty string")
            if key == "routing" and node.text not in ROUTING_MODES:
                raise ConfigError(
                    f"{_where(path, line)}: routing {node.text!r} is not one of "
                    f"{', '.join(ROUTING_MODES)}",
                    hint="'derive' lets cdcflow route each aggregate's tables into one "
                    "ordered stream; 'check' (the default) only checks the file's own routing",
                )
            extra[key] = node.text.strip()
        elif key == "name":
            if not isinstance(node, _Scalar) or not node.text:
                raise ConfigError(f"{_where(path, line)}: key 'name' must be a non-empty string")
            name = node.text.strip()
        else:
            if not isinstance(node, _Map):
                raise ConfigError(f"{_where(path, line)}: key 'config' must be a mapping")
            config_node = node
    if name is None and not overlay:
        raise ConfigError(f"{path}: key 'name' is missing", hint="add 'name: <connector name>'")
    if config_node is None:
        if not overlay:
            raise ConfigError(
                f"{path}: key 'config' is missing",
                hint="add 'config:' with the connector's properties",
            )
        config_node = _Map(None, [])

    config: dict[str, str | None] = {}
    origin: dict[str, str] = {}
    lines_of: dict[str, int | None] = {}
    for key, line, node in config_node.entries:
        if key in lines_of:
            raise ConfigError(
                f"{_where(path, line)}: config key {key!r} given twice (also line {lines_of[key]})"
            )
        lines_of[key] = line
        value = _config_value(key, node, path, line)
        if value is None and not overlay:
            raise ConfigError(
                f"{_where(path, line)}: config key {key!r} has no value",
                hint="give it a value, or remove the line",
            )
        config[key] = value
        origin[key] = _where(path, line)
    return _Parsed(path, name, config, origin, extra.get("domain"), extra.get("routing"))


def _read(path: Path, *, overlay: bool) -> _Parsed:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    root = _from_json(text, path) if path.suffix == ".json" else _from_yaml(text, path)
    return _parse(root, path, overlay=overlay)


def parse_connector_file(path: Path) -> ConnectorSpec:
    """Read one base connector file.

    Raises:
        ConfigError: the file is unreadable, not valid YAML/JSON, or not a
            connector (the message names the file, the line and the key).
    """
    return _finish(_read(path, overlay=False), None)


def _finish(base: _Parsed, over: _Parsed | None) -> ConnectorSpec:
    config = dict(base.config)
    origin = dict(base.origin)
    name = base.name
    domain, routing = base.domain, base.routing
    if over is not None:
        domain, routing = over.domain or domain, over.routing or routing
        for key, value in over.config.items():
            if value is None:
                if key not in config:
                    raise ConfigError(
                        f"{over.origin[key]}: removes {key!r}, which {base.path} does not set",
                        hint="remove the line from the overlay (a typo in the key?)",
                    )
                del config[key]
                origin.pop(key, None)
            else:
                config[key] = value
                origin[key] = over.origin[key]
        name = over.name or name
    assert name is not None
    if "name" in config:
        # Connect requires config.name to equal the connector's name; it is
        # filled in by the server, so the file need not (and should not) repeat it.
        if config["name"] != name:
            raise ConfigError(
                f"{origin['name']}: config 'name' ({config['name']!r}) differs from "
                f"the connector's name {name!r}",
                hint="remove 'name' from config; the top-level 'name' is the connector's name",
            )
        del config["name"]
        origin.pop("name", None)
    if not config.get("connector.class"):
        raise ConfigError(
            f"{base.path}: config 'connector.class' is missing",
            hint="set it, e.g. io.debezium.connector.postgresql.PostgresConnector",
        )
    strings = {k: v for k, v in config.items() if v is not None}
    signals = derive_signals(strings)
    return ConnectorSpec(
        name,
        {**strings, **signals},
        base.path,
        over.path if over else None,
        {**origin, **dict.fromkeys(signals, "derived")},
        domain=domain,
        routing=routing or "check",
        derived=dict.fromkeys(signals, f"derived ({SIGNAL_KEY}): the signal channel of a backfill"),
    )


def _files_in(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )


def load_connectors(directory: Path, environment: str | None = None) -> list[ConnectorSpec]:
    """Every connector declared in ``directory``, with the environment's overlay applied.

    Raises:
        ConfigError: the directory or the overlay directory is missing, it holds
            no connector file, a file is malformed, an overlay has no base file,
            or two files declare the same connector name.
    """
    if not directory.is_dir():
        raise ConfigError(
            f"connector directory {directory} does not exist",
            hint="run from the repository root, or pass --dir "
            "(setting connect.connectors_dir, env CDCFLOW_CONNECT__CONNECTORS_DIR)",
        )
    bases = {p.stem: _read(p, overlay=False) for p in _files_in(directory)}
    if not bases:
        # Refuse rather than plan "delete everything" against a wrong directory.
        raise ConfigError(f"no connector files (*.yaml, *.yml, *.json) in {directory}")
    overlays: dict[str, _Parsed] = {}
    if environment:
        overlay_dir = directory / "overlays" / environment
        if not overlay_dir.is_dir():
            raise ConfigError(
                f"environment {environment!r} has no overlay directory {overlay_dir}",
                hint="create it (it may be empty), or check the spelling of --env "
                "(env CDCFLOW_CONNECT__ENVIRONMENT)",
            )
        for path in _files_in(overlay_dir):
            if path.stem not in bases:
                raise ConfigError(
                    f"overlay {path} has no base file {directory}/{path.stem}.yaml",
                    hint="an overlay is named after the base file it changes",
                )
            if path.stem in overlays:
                raise ConfigError(
                    f"two overlays for {path.stem}: {overlays[path.stem].path} and {path}"
                )
            overlays[path.stem] = _read(path, overlay=True)
    specs: list[ConnectorSpec] = []
    declared: dict[str, Path] = {}
    for stem, base in bases.items():
        spec = _finish(base, overlays.get(stem))
        if spec.name in declared:
            raise ConfigError(
                f"connector {spec.name!r} is declared twice: "
                f"{declared[spec.name]} and {spec.source}"
            )
        declared[spec.name] = spec.source
        specs.append(spec)
    return specs
