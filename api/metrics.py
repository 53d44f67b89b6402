"""The api's Prometheus metrics, on a registry of its own (one per app, never the global one).

Served at `GET /metrics` (`api.routers.metrics`). Requests are labelled by route template
(`/api/projects/{project_id}/cohorts/{cohort_id}/`), never by the raw path, so ids do not
explode the label space; a path no route matches is labelled `unmatched`.

    cohorts_api_request_seconds{method,route,status}   histogram  request latency
    cohorts_api_consumer_position{topic,partition}     gauge      next offset the views will apply
    cohorts_api_consumer_lag{topic,partition}          gauge      records between the position and the end
    cohorts_api_records_applied_total{topic}           counter    records folded into the views
    cohorts_api_dead_letters_total{topic,reason}       counter    records dead-lettered (reason = error type)
    cohorts_api_cohorts{type}                          gauge      non-deleted cohorts (static, dynamic)
    cohorts_api_write_retries_total                    counter    writes run again (fenced, or commit found aborted)
    cohorts_api_apply_wait_seconds                     histogram  wait for this process to apply its own write
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "RequestMetricsMiddleware"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "cohorts_api_request_seconds",
            "Request latency, by method, route template and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_position = Gauge(
            "cohorts_api_consumer_position",
            "Next offset the api's views will apply, by topic and partition",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "cohorts_api_consumer_lag",
            "Records between the views' position and the committed end, by topic and partition",
            ["topic", "partition"],
            registry=r,
        )
        self.records_applied = Counter(
            "cohorts_api_records_applied", "Records folded into the api's views, by topic", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "cohorts_api_dead_letters",
            "Records the api could not fold, sent to the dead-letter topic, by topic and reason",
            ["topic", "reason"],
            registry=r,
        )
        self.cohorts = Gauge("cohorts_api_cohorts", "Non-deleted cohorts, by type", ["type"], registry=r)
        self.write_retries = Counter(
            "cohorts_api_write_retries",
            "Writes run again: fenced by another api process, or a failed commit found not committed",
            registry=r,
        )
        self.apply_wait = Histogram(
            "cohorts_api_apply_wait_seconds",
            "Time a write waited for this process's views to apply it (read-your-writes)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def watch_cohorts(self, counts: Callable[[], dict[str, int]]) -> None:
        """Read the cohort counts at scrape time from `counts()` (`CohortReader.counts`)."""
        for kind in ("static", "dynamic"):
            self.cohorts.labels(kind).set_function(lambda kind=kind: counts().get(kind, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Observes every HTTP request once it has answered (or raised: status 500)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
