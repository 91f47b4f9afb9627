"""``cdcflow`` in a subprocess, for the redrive tests: ``python -m tests.integration.redrive_cli ARGS``.

In the test's own process, a :class:`~tests.integration.harness.PipelineRun`
sets the domain's ``__domain__`` to the run's name; a subprocess must do the
same before the command loads the domain. ``REDRIVE_TEST_DOMAIN`` is that
name; ``REDRIVE_TEST_HOLD`` (a path) and ``REDRIVE_TEST_HOLD_AT`` make the
fixed rule stop for good at its N-th call (see ``tests.domains.redrive.fixed``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.domains.redrive import fixed
from tests.domains.redrive.events import _RedriveEvent

_RedriveEvent.__domain__ = os.environ["REDRIVE_TEST_DOMAIN"]
if os.environ.get("REDRIVE_TEST_HOLD"):
    fixed.HOLD = Path(os.environ["REDRIVE_TEST_HOLD"])
    fixed.HOLD_AT = int(os.environ["REDRIVE_TEST_HOLD_AT"])

from pipeline.cli import main  # noqa: E402  (after the domain's name is set)

main(sys.argv[1:])
