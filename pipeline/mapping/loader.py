"""Loading a domain's rules by module path (``cdcflow run --domain mypkg.mappings``)."""

from __future__ import annotations

import importlib

from pipeline.errors import ConfigError
from pipeline.mapping.registry import Rules

__all__ = ["load_domain"]


def load_domain(module_path: str) -> Rules:
    """Import ``module_path`` and return its :class:`Rules`.

    The module (or, for a package, its ``mappings`` submodule) must define a
    module-level ``rules = Rules(...)``; importing it registers the rules.

    Raises:
        ConfigError: the module cannot be imported or defines no ``rules``.
    """
    module = _import(module_path)
    rules = getattr(module, "rules", None)
    if rules is None and hasattr(module, "__path__"):
        # A package: its rules conventionally live in <package>.mappings.
        rules = getattr(_import(f"{module_path}.mappings", optional=True), "rules", None)
    if not isinstance(rules, Rules):
        raise ConfigError(
            f"domain module {module_path!r} defines no 'rules'",
            hint="define 'rules = Rules(\"<domain>\")' in it, or in its mappings module",
        )
    return rules


def _import(module_path: str, optional: bool = False) -> object:
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        if optional and exc.name == module_path:
            return None
        raise ConfigError(
            f"cannot import domain module {module_path!r}: {exc}",
            hint="pass an importable module path, e.g. --domain mypkg.mappings",
        ) from exc
    except Exception as exc:
        # The user's module failed while registering rules (a bad YAML file, a typo).
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"domain module {module_path!r} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
