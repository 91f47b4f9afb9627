"""Fixtures of the chaos tier beyond the local stack: the secured 3-node test cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.stack import LocalStack
from tests.chaos.cluster import ClusterPipeline
from tests.support.pipeline import prepare_shop

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests on the cluster last, one after the other.

    The cluster starts with the first of them and stays up to the end of the
    session; meanwhile its connector streams every change other tests make,
    so it must not run beside the local stack's fault tests.
    """
    on_cluster = [item for item in items if "cluster" in getattr(item, "fixturenames", ())]
    moved = {id(item) for item in on_cluster}
    items[:] = [item for item in items if id(item) not in moved] + on_cluster


@pytest.fixture(scope="session")
def cluster(stack: LocalStack, settings: Settings) -> Iterator[ClusterPipeline]:
    """The shop pipeline on a secured 3-node KRaft cluster (see tests/chaos/cluster.py).

    Started once per session, stopped at its end; CDCFLOW_KEEP_STACK=1 keeps
    it running (and its connector deployed) for the next session.
    """
    prepare_shop(settings)  # the shop tables, which the cluster's connector captures
    pipeline = ClusterPipeline(settings, REPO)
    try:
        pipeline.up()  # a failure here still stops whatever of the cluster started
        yield pipeline
    finally:
        pipeline.down(keep=bool(os.environ.get("CDCFLOW_KEEP_STACK")))
