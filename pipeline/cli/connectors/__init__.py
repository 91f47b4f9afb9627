"""``cdcflow connectors``: connector configs as code, and operating them on Connect.

One module per command family, each attaching its commands to the one group
(:data:`command`, in ``_common``):

- ``deploy``: validate, plan, apply, preflight (from the files to Connect)
- ``observe``: status, plugins
- ``operate``: restart, pause, resume, stop, delete, offsets
- ``snapshot``: backfills through Debezium's signals (start, status, stop)
- ``export``: the files as Kubernetes resources
"""

import pipeline.cli.connectors.deploy
import pipeline.cli.connectors.export
import pipeline.cli.connectors.observe
import pipeline.cli.connectors.operate
import pipeline.cli.connectors.snapshot  # noqa: F401  (each attaches its commands)
from pipeline.cli.connectors._common import CHANGES_PENDING, command

__all__ = ["CHANGES_PENDING", "command"]
