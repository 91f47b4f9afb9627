"""The transformer daemon: consume CDC records, map them to domain events, produce in transactions."""

from pipeline.transformer.daemon import BatchResult, Transformer, TransformerFenced
from pipeline.transformer.dedup import SourceDedup
from pipeline.transformer.dlq import HEADER_PREFIX, OutRecord, dead_letter
from pipeline.transformer.factory import build_transformer
from pipeline.transformer.metrics import Metrics

__all__ = [
    "HEADER_PREFIX",
    "BatchResult",
    "Metrics",
    "OutRecord",
    "SourceDedup",
    "Transformer",
    "TransformerFenced",
    "build_transformer",
    "dead_letter",
]
