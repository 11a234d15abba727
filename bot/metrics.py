"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from bot.domain import QueueFigure

# A label value per route pattern, never per raw path, keeps the number of series bounded; a request
# that no route answers (404, or 405 for a method the path does not take) is "unmatched".
UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric the bot exports, registered on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        # CPU, memory, open files, start time (from /proc) and the Python version, as every exporter has
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.messages = Counter("inbox_messages_total", "Inbound messages stored", ["channel", "result"], registry=r)
        self.rejected = Counter(
            "inbox_rejected_requests_total", "Inbound requests refused", ["endpoint", "reason"], registry=r
        )
        self.firings = Counter("inbox_automation_runs_total", "Automation firings", registry=r)
        self.automation_firings = Counter(
            "inbox_automation_firings_total", "Firings of each automation", ["automation"], registry=r
        )
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
        # the queue, per priority and team ("" for none), computed when scraped
        self.queue_open = Gauge(
            "inbox_queue_open_conversations", "Open conversations", ["priority", "team"], registry=r
        )
        self.queue_longest_wait = Gauge(
            "inbox_queue_longest_wait_seconds",
            "How long the longest waiting open conversation has waited for an answer (0: none waits)",
            ["priority", "team"],
            registry=r,
        )
        # live updates: what the hub could not deliver, and the streams it feeds
        self.live_streams = Gauge("inbox_live_streams", "Open live-update streams (GET /events)", registry=r)
        self.live_dropped = Counter(
            "inbox_live_dropped_total", "Live updates dropped for a stream that read too slowly", registry=r
        )
        self.live_errors = Counter(
            "inbox_live_errors_total",
            "Live-update failures (publish, or the cross-worker relay)",
            ["where"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "inbox_http_request_duration_seconds",
            "Time to answer one HTTP request, by route pattern, method and status",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def labelled(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: the hot paths (every request, every message) skip
        the metric's lock and label checks after the first time. Not for metrics that are cleared."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def set_queue(self, figures: Iterable[QueueFigure], *, now: datetime) -> None:
        """The queue's gauges from this scrape's figures (combinations gone since are dropped)."""
        self.queue_open.clear()
        self.queue_longest_wait.clear()
        for f in figures:
            labels = (f.priority.value, f.team or "")
            self.queue_open.labels(*labels).set(f.open)
            wait = (now - f.oldest_wait).total_seconds() if f.oldest_wait is not None else 0.0
            self.queue_longest_wait.labels(*labels).set(max(wait, 0.0))

    def fired(self, automation_ids: Iterable[int]) -> None:
        """Count the firings of one message's evaluation, in total and per automation."""
        for automation_id in automation_ids:
            self.firings.inc()
            self.automation_firings.labels(str(automation_id)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_pattern(request: web.Request) -> str:
    """The pattern of the route that answered (`/api/conversations/{id}`), not the path asked for."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def http_metrics_middleware(metrics: Metrics) -> Middleware:
    """Observes each request's latency in `inbox_http_request_duration_seconds`. Put it first (the
    outermost) so the status it records is the one the client gets, after the error middlewares."""

    @web.middleware
    async def observe_latency(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # what an unhandled exception becomes
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 0  # the client went away: nothing was answered, nothing to observe
            raise
        finally:
            if status:
                method = request.method if request.method in _METHODS else "other"
                metrics.labelled(metrics.http_seconds, route_pattern(request), method, str(status)).observe(
                    time.perf_counter() - started
                )

    return observe_latency
