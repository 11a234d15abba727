"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("inbox_messages_total", "Inbound messages stored", ["channel", "result"], registry=r)
        self.rejected = Counter(
            "inbox_rejected_requests_total", "Inbound requests refused", ["endpoint", "reason"], registry=r
        )
        self.firings = Counter("inbox_automation_runs_total", "Automation firings", registry=r)
        self.ingest_seconds = Histogram(
            "inbox_ingest_seconds",
            "Time from submit to commit of one inbound message",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "inbox_ingest_batch_size", "Messages per group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.ingest_errors = Counter("inbox_ingest_errors_total", "Failed ingest transactions", registry=r)
        self.outbox_jobs = Counter("inbox_outbox_jobs_total", "Outbox job outcomes", ["kind", "outcome"], registry=r)
        self.outbox_pending = Gauge("inbox_outbox_pending", "Outbox jobs waiting", registry=r)
        self.outbox_failed = Gauge("inbox_outbox_failed", "Outbox jobs failed for good", registry=r)
        self.automations = Gauge("inbox_automations_active", "Enabled automations in the matcher", registry=r)
        self.connector_errors = Counter("inbox_connector_errors_total", "Connector failures", ["channel"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
