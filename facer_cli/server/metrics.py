"""The figures GET /metrics exports, in Prometheus' text format: one registry per app (several
apps may live in one process), fed per request by the observer (`facer_cli.server.observe`) and
read from the service's state at each scrape. Imported only when the `metrics` setting is on, so
prometheus-client loads then only.

Per request: `facer_http_requests_total`, `facer_http_request_duration_seconds`,
`facer_http_requests_in_flight`, `facer_model_seconds`, `facer_model_wait_seconds`,
`facer_http_errors_total`, `facer_store_errors_total`. At each scrape: `facer_info`,
`facer_model_slots`, `facer_model_running`, `facer_model_waiting`, `facer_model_queue_size`,
`facer_model_refused_total`, and per gallery index this process keeps open
`facer_gallery_templates`, `facer_gallery_changes_behind`, `facer_gallery_sync_age_seconds`;
and the process's own (`process_*`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Iterator

from facer_cli.errors import MissingExtraError, StoreError
from facer_cli.server.gate import GateTimes

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - the server extra holds it
    raise MissingExtraError(
        "the metrics setting needs prometheus-client: install the server extra with pip install 'facer[server]'",
        extra="server",
    ) from None

if TYPE_CHECKING:
    from fastapi import FastAPI

    from facer_cli.service import Facer

log = logging.getLogger("facer.server")

# Seconds: /health answers in a millisecond, a model request in tens to hundreds, a queued one up to
# server_queue_timeout_s (60 s).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def store_error_names() -> set[str]:
    """The names of StoreError and every subclass loaded now (a body names its error's class)."""
    names, todo = set(), [StoreError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class Metrics:
    """One app's figures (`render` for GET /metrics)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, app: FastAPI):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "facer_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "facer_http_request_duration_seconds",
            "Time from a request's arrival to its answer sent, by method and route template.",
            ("method", "route"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "facer_http_requests_in_flight", "HTTP requests being read, run or answered now.", registry=registry
        )
        self.model_run = Histogram(
            "facer_model_seconds",
            "A request's model work: time it ran in a worker thread inside the model gate, by route template.",
            ("route",),
            buckets=BUCKETS,
            registry=registry,
        )
        self.model_wait = Histogram(
            "facer_model_wait_seconds",
            "Time a request waited for a model slot (server_concurrency), by route template.",
            ("route",),
            buckets=BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "facer_http_errors",
            "Error answers, by error type (the body's error.type: the class in docs/exit-codes.md).",
            ("type",),
            registry=registry,
        )
        self.store_errors = Counter(
            "facer_store_errors",
            "Requests answered with a store error (503: the database locked, unreachable or unusable), and "
            "scrapes that could not read the store.",
            registry=registry,
        )
        registry.register(ServiceCollector(app, self.store_errors))
        ProcessCollector(registry=registry)

    def started(self) -> None:
        self.in_flight.inc()

    def finished(
        self, method: str, route: str, status: int, duration_s: float, times: GateTimes, error_type: str | None
    ) -> None:
        self.in_flight.dec()
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(duration_s)
        if times.jobs:
            self.model_run.labels(route).observe(times.run_s)
        if times.jobs or times.wait_s:
            self.model_wait.labels(route).observe(times.wait_s)
        if error_type is not None:
            self.errors.labels(error_type).inc()
            if error_type in store_error_names():
                self.store_errors.inc()

    def render(self) -> bytes:
        """The text a scrape gets (reads the store once per open gallery index: run it in a worker thread)."""
        return generate_latest(self.registry)


class ServiceCollector(Collector):
    """Figures read from the service's state at each scrape: the model gate, the gallery indexes."""

    def __init__(self, app: FastAPI, store_errors: Counter):
        self.app = app
        self.store_errors = store_errors

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time only: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        state = getattr(self.app.state, "facer", None)
        if state is None:  # the lifespan has not finished loading
            return
        info = state.facer.engine.info
        from facer_cli import __version__

        facer_info = GaugeMetricFamily(
            "facer_info", "What this process runs (always 1).", labels=("version", "model", "fingerprint", "provider")
        )
        facer_info.add_metric((__version__, str(info.pack), str(info.fingerprint), str(info.provider)), 1)
        yield facer_info
        gate = state.gate
        yield GaugeMetricFamily(
            "facer_model_slots", "Model jobs that may run at once (server_concurrency).", gate.slots
        )
        yield GaugeMetricFamily("facer_model_running", "Model jobs running now.", gate.running)
        yield GaugeMetricFamily("facer_model_waiting", "Requests waiting for a model slot now.", gate.waiting)
        yield GaugeMetricFamily(
            "facer_model_queue_size", "Requests that may wait for a model slot (server_queue_size).", gate.queue_size
        )
        yield CounterMetricFamily(
            "facer_model_refused", "Requests refused with 503: the model queue full, or no slot in time.", gate.refused
        )
        yield from self._galleries(state.facer)

    def _galleries(self, facer: Facer) -> Iterator[Metric]:
        templates = GaugeMetricFamily(
            "facer_gallery_templates",
            "Templates in the gallery index (identify's 1:N search), by model.",
            labels=("model",),
        )
        behind = GaugeMetricFamily(
            "facer_gallery_changes_behind",
            "Template inserts and deletes in the store the gallery index has not caught up with yet (-1: unknown).",
            labels=("model",),
        )
        age = GaugeMetricFamily(
            "facer_gallery_sync_age_seconds",
            "Seconds since the gallery index was last seen to match the store (0 when it matches now).",
            labels=("model",),
        )
        for index in facer.gallery_indexes():
            templates.add_metric((index.model,), len(index))
            try:
                behind.add_metric((index.model,), index.changes_behind())
            except Exception as exc:  # the store unreachable: the other figures still answer
                self.store_errors.inc()
                log.warning("metrics: could not read the store's changes: %s", type(exc).__name__)
            if index.synced_at is not None:
                age.add_metric((index.model,), max(0.0, time.monotonic() - index.synced_at))
        yield templates
        yield behind
        yield age
