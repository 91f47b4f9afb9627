"""docs/architecture.md names only modules and packages that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _named_paths() -> list[Path]:
    """Every ``pipeline/...`` path the page names, and each ``x.py`` named in a room's row."""
    paths: list[Path] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        full = re.findall(r"`(pipeline/[\w/.]*)`", line)
        paths += [ROOT / p for p in full]
        room = re.match(r"\| `(pipeline/[\w/]+/)` \|", line)
        if room:
            for name in re.findall(r"`(\w+\.py)`", line):
                paths.append(ROOT / room.group(1) / name)
    return paths


def test_every_module_the_architecture_page_names_exists() -> None:
    named = _named_paths()
    assert len(named) > 40  # the page names the rooms and their modules
    missing = sorted(str(p.relative_to(ROOT)) for p in named if not p.exists())
    assert missing == []


def test_every_package_of_pipeline_is_a_room_on_the_page() -> None:
    text = DOC.read_text(encoding="utf-8")
    packages = sorted(p.name for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").exists())
    assert [p for p in packages if f"pipeline/{p}/" not in text] == []
