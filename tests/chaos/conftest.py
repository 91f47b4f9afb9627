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


@pytest.fixture(scope="session")
def cluster(stack: LocalStack, settings: Settings) -> Iterator[ClusterPipeline]:
    """The shop pipeline on a secured 3-node KRaft cluster (see tests/chaos/cluster.py).

    Started once per session, stopped at its end; CDCFLOW_KEEP_STACK=1 keeps
    it running (and its connector deployed) for the next session.
    """
    prepare_shop(settings)  # the shop tables, which the cluster's connector captures
    pipeline = ClusterPipeline(settings, REPO)
    pipeline.up()
    try:
        yield pipeline
    finally:
        pipeline.down(keep=bool(os.environ.get("CDCFLOW_KEEP_STACK")))
