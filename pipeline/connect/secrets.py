"""Secrets in connector configs: placeholders, masking, local resolution, scrubbing.

A connector file never holds a secret in plain text: it holds a config-provider
placeholder (``${env:VAR}``, ``${file:/path/x.properties:key}``) that Kafka's
config providers resolve on the Connect worker. Anything cdcflow shows a person
or writes to a log masks every value that is a placeholder or whose key looks
secret; the few places that need a real value (preflight logging in to the
database as the connector) resolve placeholders here, locally, and hand the
result to nothing but the database driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "MASK",
    "Redactor",
    "has_placeholder",
    "is_secret_key",
    "is_sensitive",
    "mask_value",
    "placeholders",
    "plain_secrets",
    "resolve_locally",
]

MASK = "********"

# The syntax of Kafka's ConfigTransformer: ${provider:[path:]key}.
_PLACEHOLDER = re.compile(r"\$\{(?P<provider>[^}]*?):(?:(?P<path>[^}]*?):)?(?P<key>[^}]*?)\}")

# Key names that carry credentials in Kafka, Connect, Debezium and JDBC configs.
_SECRET_KEY = re.compile(
    r"password|passwd|secret|token|credential|jaas\.config|user\.info|"
    r"api[._-]?key|private[._-]?key|keystore\.key|access[._-]?key",
    re.IGNORECASE,
)


def placeholders(value: str) -> list[tuple[str, str | None, str]]:
    """The ``(provider, path, key)`` of every placeholder in ``value``."""
    return [(m["provider"], m["path"], m["key"]) for m in _PLACEHOLDER.finditer(value)]


def has_placeholder(value: str | None) -> bool:
    """True when ``value`` contains at least one ``${provider:...}`` placeholder."""
    return bool(value) and _PLACEHOLDER.search(value or "") is not None


def is_secret_key(key: str) -> bool:
    """True when a config key's name says its value is a credential."""
    return _SECRET_KEY.search(key) is not None


def is_sensitive(key: str, value: str | None) -> bool:
    """True when a value must be masked: a placeholder, or under a secret-looking key."""
    return is_secret_key(key) or has_placeholder(value)


def mask_value(key: str, value: str | None) -> str | None:
    """The value as it may be shown: :data:`MASK` if sensitive, else unchanged."""
    if value is None:
        return None
    return MASK if is_sensitive(key, value) else value


def plain_secrets(config: Mapping[str, str]) -> list[str]:
    """The secret-looking keys whose value is written out instead of a placeholder."""
    return sorted(k for k, v in config.items() if is_secret_key(k) and v and not has_placeholder(v))


def _read_properties(path: Path) -> dict[str, str]:
    # Enough of java.util.Properties for secrets files: key=value or key: value,
    # comments (# !) and blank lines; no line continuations or escapes.
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)", line)
        if match:
            out[match[1]] = match[2]
    return out


def resolve_locally(value: str, env: Mapping[str, str] | None = None) -> str | None:
    """Resolve ``env`` and ``file`` placeholders here, as the worker would.

    Returns the resolved string, or None when any placeholder cannot be
    resolved on this machine (variable unset, file unreadable, other provider).
    Never raises.
    """
    environ = os.environ if env is None else env
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        provider, path, key = match["provider"], match["path"], match["key"]
        if provider == "env" and path is None and key in environ:
            return environ[key]
        if provider == "file" and path:
            try:
                props = _read_properties(Path(path))
            except OSError:
                props = {}
            if key in props:
                return props[key]
        unresolved = True
        return match[0]

    resolved = _PLACEHOLDER.sub(replace, value)
    return None if unresolved else resolved


class Redactor:
    """Replaces known secret values in text before it is shown or logged.

    Built from connector configs: the literal values of secret-looking keys and
    whatever their placeholders resolve to here. A message from Connect or from
    the database that echoes a value back is scrubbed with :meth:`scrub`.
    """

    # Shorter values would blank out ordinary words ("on", "1") in messages.
    _MIN_LEN = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = {s for s in secrets if len(s) >= self._MIN_LEN}

    @classmethod
    def for_configs(
        cls, configs: Iterable[Mapping[str, str]], env: Mapping[str, str] | None = None
    ) -> Redactor:
        # Only values under secret keys: a placeholder for a user or host name
        # resolves to words (e.g. "debezium") that also occur in class names.
        found: set[str] = set()
        for config in configs:
            for key, value in config.items():
                if not is_secret_key(key):
                    continue
                if not has_placeholder(value):
                    found.add(value)
                elif (resolved := resolve_locally(value, env)) is not None:
                    found.add(resolved)
        return cls(found)

    def scrub(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text
