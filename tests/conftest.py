"""The real local stack, brought up once per test session.

Integration and fault tests take the ``stack`` fixture: PostgreSQL, Kafka (KRaft),
Kafka Connect with the Debezium plugin and Apicurio Registry, all running as
plain processes started by ``pipeline.stack``. A stack that is already up
(``cdcflow stack up`` by hand) is reused and left running; one this fixture
started is stopped at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pipeline.settings import Settings, load_settings
from pipeline.stack import LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "tests/integration" in path:
            item.add_marker(pytest.mark.integration)
        elif "tests/chaos" in path:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[LocalStack]:
    local = LocalStack(settings)
    # Only a stack this session started from nothing is stopped at the end: a
    # stack that was (even partly) up belongs to someone else, e.g. a developer
    # running tests beside 'cdcflow stack up', or another test session.
    ours = not any(comp.proc.running() for comp in local.components)
    local.up(progress=lambda msg: print(f"[stack] {msg}", flush=True))
    try:
        yield local
    finally:
        if ours and not os.environ.get("CDCFLOW_KEEP_STACK"):
            local.down()
