"""Unit tests are hermetic: they see cdcflow's defaults, not the caller's CDCFLOW_* settings."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_cdcflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CDCFLOW_"):
            monkeypatch.delenv(key)
