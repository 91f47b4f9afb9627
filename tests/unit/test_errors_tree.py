"""One error tree: every cdcflow error is in the tree ``pipeline.errors`` documents and exports.

The tree is read from the module docstring; every :class:`CdcflowError`
subclass defined anywhere under ``pipeline`` must be drawn there under its
real parent, and be importable from ``pipeline.errors``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import pipeline
import pipeline.errors as errors
from pipeline.errors import CdcflowError, TransformerFenced


def _every_module() -> None:
    for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if not info.name.endswith("__main__"):  # runs the command line
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _drawn_tree() -> dict[str, str]:
    """Each error drawn in the docstring's tree -> its parent there."""
    doc = errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if not match or not ("──" in line or line.strip() == "CdcflowError"):
            continue
        # A branch (├── / └──) sits one level below the prefix drawn before it.
        depth, name = len(match.group(1)) + (4 if "──" in line else 0), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def cdcflow_errors() -> list[type[CdcflowError]]:
    _every_module()
    return sorted(
        (c for c in _subclasses(CdcflowError) if c.__module__.startswith("pipeline.")),
        key=lambda c: c.__name__,
    )


@pytest.mark.parametrize("error", cdcflow_errors(), ids=lambda c: c.__name__)
def test_every_error_is_in_the_documented_tree_under_its_parent(error: type) -> None:
    drawn = _drawn_tree()
    assert error.__name__ in drawn, f"{error.__name__} is not in the tree of pipeline/errors.py"
    parent = next(b for b in error.__mro__[1:] if issubclass(b, CdcflowError))
    assert drawn[error.__name__] == parent.__name__
    assert getattr(errors, error.__name__) is error
    assert error.__name__ in errors.__all__


def test_the_tree_names_no_error_that_does_not_exist() -> None:
    existing = {c.__name__ for c in cdcflow_errors()}
    assert set(_drawn_tree()) - existing == set()


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018


def test_errors_carry_their_exit_codes() -> None:
    assert TransformerFenced.exit_code == 3
    assert errors.ConfigError.exit_code == 78
    assert CdcflowError.exit_code == 1


def _loaded_after(imports: str, prefix: str) -> list[str]:
    """The modules under ``prefix`` a fresh interpreter has loaded after ``import <imports>``."""
    code = f"import sys, {imports}; print([m for m in sorted(sys.modules) if m.startswith({prefix!r})])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout))


def test_loading_the_error_tree_loads_no_layer() -> None:
    assert _loaded_after("pipeline.errors", "pipeline.") == ["pipeline.errors"]


def test_the_transformer_does_not_load_the_contract_tooling() -> None:
    assert (
        _loaded_after("pipeline.transformer, pipeline.connect.domain", "pipeline.contracts") == []
    )
