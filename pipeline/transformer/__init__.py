"""The transformer daemon: consume CDC records, map them to domain events, produce in transactions.

Its rooms: :mod:`.batch` (records to output records, pure), :mod:`.checkpoint`
(the transaction protocol and the de-duplication marks), :mod:`.daemon` (the
loop), :mod:`.clients` (how the Kafka clients are made), :mod:`.factory`
(a transformer wired from settings).
"""

from pipeline.transformer.batch import BatchProcessor, BatchResult
from pipeline.transformer.checkpoint import Checkpoint
from pipeline.transformer.clients import Clients
from pipeline.transformer.daemon import Transformer
from pipeline.transformer.dedup import SourceDedup
from pipeline.transformer.dlq import HEADER_PREFIX, OutRecord, dead_letter
from pipeline.transformer.factory import build_transformer
from pipeline.transformer.metrics import Metrics

__all__ = [
    "HEADER_PREFIX",
    "BatchProcessor",
    "BatchResult",
    "Checkpoint",
    "Clients",
    "Metrics",
    "OutRecord",
    "SourceDedup",
    "Transformer",
    "build_transformer",
    "dead_letter",
]
