"""The house rules of ``pipeline/`` (docs/architecture.md), checked on the source itself.

Rooms stay small enough to read in one sitting, and the generic rooms do not
lean on the bundled example: the shop is one package a user's own domain
replaces, so nothing outside it may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipeline"
SHOP = PIPELINE / "domains" / "shop"
MOST_LINES = 500


def _modules() -> list[Path]:
    return sorted(PIPELINE.rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports; relative ones are not used here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_pipeline_is_over_500_lines() -> None:
    modules = _modules()
    assert len(modules) > 100
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MOST_LINES
    }
    assert long == {}


def test_nothing_outside_the_example_package_imports_the_shop() -> None:
    leaning = {
        str(p.relative_to(ROOT)): sorted(n for n in names if n.startswith("pipeline.domains.shop"))
        for p in _modules()
        if SHOP not in p.parents and (names := _imported(p))
    }
    assert {p: n for p, n in leaning.items() if n} == {}
    # the check sees an import of the shop where there is one
    assert any(n.startswith("pipeline.domains.shop") for n in _imported(SHOP / "mappings.py"))
