"""Prometheus metrics and the health endpoint of the transformer.

``GET /metrics`` (Prometheus text), ``GET /healthz`` (the loop is alive:
it went round within the last 30 s) and ``GET /readyz`` (partitions are
assigned and the last batch committed) on ``transformer.metrics_port``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics"]

LIVENESS_WINDOW_S = 30.0


class Metrics:
    """Every metric of one transformer process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Every metric in this process's own registry.
        counter = functools.partial(Counter, registry=self.registry)
        histogram = functools.partial(Histogram, registry=self.registry)
        gauge = functools.partial(Gauge, registry=self.registry)
        self.consumed = counter(
            "cdcflow_records_consumed", "CDC records consumed (committed batches)", ["topic"]
        )
        self.mapped = counter(
            "cdcflow_records_mapped", "CDC records that became domain events", ["topic"]
        )
        self.produced = counter("cdcflow_events_produced", "Domain events produced", ["event_type"])
        self.skipped = counter(
            "cdcflow_records_skipped", "Records deliberately skipped", ["reason"]
        )
        self.dead_lettered = counter(
            "cdcflow_records_dead_lettered", "Records sent to the dead-letter topic", ["stage"]
        )
        self.transactions = counter(
            "cdcflow_transactions", "Kafka transactions by outcome", ["outcome"]
        )
        self.batch_seconds = histogram(
            "cdcflow_batch_seconds",
            "Time to process and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_records = histogram(
            "cdcflow_batch_records",
            "Records per batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 5000),
        )
        self.lag_seconds = histogram(
            "cdcflow_end_to_end_lag_seconds",
            "From the source commit to the domain event's transaction commit",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.consumer_lag = gauge(
            "cdcflow_consumer_lag", "Records behind the log end", ["topic", "partition"]
        )
        self.assigned = gauge("cdcflow_assigned_partitions", "Partitions assigned to this process")
        self.last_loop = time.monotonic()
        self.last_commit_ok = True
        self._server: ThreadingHTTPServer | None = None

    def forget_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the lag of partitions this process no longer owns (their next owner reports it).

        A stale value would keep a lag alert on a process that has nothing to read.
        """
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(topic, str(partition))

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop < LIVENESS_WINDOW_S

    def ready(self) -> bool:
        return self.alive() and self.last_commit_ok and self.assigned._value.get() > 0

    def totals(self) -> dict[str, Any]:
        """Counter totals, for logs, the summary at exit and tests."""

        def total(counter: Counter) -> dict[str, float]:
            out: dict[str, float] = {}
            for metric in counter.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        label = next(iter(sample.labels.values()), "")
                        out[label] = out.get(label, 0) + sample.value
            return out

        return {
            "consumed": total(self.consumed),
            "mapped": total(self.mapped),
            "produced": total(self.produced),
            "skipped": total(self.skipped),
            "dead_lettered": total(self.dead_lettered),
            "transactions": total(self.transactions),
        }

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP endpoint in a daemon thread; returns the bound port (0 picks one)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, ctype, status = (
                        generate_latest(metrics.registry),
                        CONTENT_TYPE_LATEST,
                        200,
                    )
                elif self.path in ("/healthz", "/readyz"):
                    ok = metrics.alive() if self.path == "/healthz" else metrics.ready()
                    body = json.dumps({"ok": ok, **metrics.totals()}).encode()
                    ctype, status = "application/json", 200 if ok else 503
                else:
                    body, ctype, status = b"not found\n", "text/plain", 404
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        ).start()
        return int(self._server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
