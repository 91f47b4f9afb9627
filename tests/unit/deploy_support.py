"""Helpers shared by the offline checks of deploy/ (compose and Kubernetes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from pipeline.settings import ENV_PREFIX, Settings


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def is_setting(variable: str) -> bool:
    """True when ``variable`` (CDCFLOW_A__B, ...) names a field of :class:`Settings`.

    pydantic-settings ignores CDCFLOW_* variables that match no field, so a
    misspelt name in a deploy file would silently do nothing: check the names.
    A variable below a dict field (CDCFLOW_KAFKA__PROPERTIES__sasl.password)
    names one entry of it.
    """
    if not variable.startswith(ENV_PREFIX):
        return False
    model: type[BaseModel] = Settings
    parts = variable[len(ENV_PREFIX) :].split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part.lower())
        if field is None:
            return False
        nested = _model_of(field.annotation)
        if nested is None:
            is_dict = get_origin(field.annotation) is dict
            return i == len(parts) - 1 or (is_dict and i == len(parts) - 2)
        model = nested
    return False


def unknown_settings(variables: Iterable[str]) -> list[str]:
    """The CDCFLOW_* names among ``variables`` that are no setting."""
    return [v for v in variables if v.startswith(ENV_PREFIX) and not is_setting(v)]
