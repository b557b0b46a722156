"""Observability: request ids, JSON logs, and Prometheus metrics.

Queue metrics (depth, leased, counters) come from the backend at scrape time, so every server
process reports the same cluster-wide numbers; HTTP latency and backend errors are per process.
Per-queue series are kept for at most Limits.metrics_queues queues (the first by name), beside
totals over every queue, so that the scrape stays bounded with many queues.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restmq.core.model import QueueStats
from restmq.core.service import QueueService
from restmq.web import listings
from restmq.web.auth import CONSUMER, authorize
from restmq.web.snapshots import Snapshots, shared

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "restmq_http_request_duration_seconds",
    "Time to the response's first byte, by handler",
    ["method", "handler", "status"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BACKEND_ERRORS = Counter(
    "restmq_backend_errors", "Requests that failed because the backend was unavailable", registry=REGISTRY
)


_ID_PREFIX = uuid.uuid4().hex[:12]  # per process; a counter makes each request id unique cheaply
_ids = itertools.count(1)


@functools.cache
def _latency(method: str, handler: str, status: int) -> Any:
    """The labelled histogram child, looked up once per combination rather than per request."""
    return REQUEST_SECONDS.labels(method, handler, str(status))


class RequestContext:
    """Give each request an id (X-Request-ID, kept when the client sends a sane one), echo it, and
    time the handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
        rid = incoming if incoming and _VALID_ID.fullmatch(incoming) else f"{_ID_PREFIX}{next(_ids):x}"
        token = request_id.set(rid)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                endpoint = scope.get("endpoint")
                handler = getattr(endpoint, "__name__", "unmatched")
                _latency(scope["method"], handler, message["status"]).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data).decode()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


GAUGES = {
    "length": "Messages ready to deliver",
    "delayed": "Messages waiting for their delay",
    "leased": "Messages leased and not yet acked",
    "dead": "Messages waiting in the dead-letter queue",
    "consumers": "Streaming consumers on all server processes",
}
COUNTERS = {
    "added": "Messages added",
    "delivered": "Deliveries (GET, lease, stream)",
    "acked": "Leases acknowledged",
    "redelivered": "Leases that expired (the message went back to its queue)",
    "expired": "Messages dropped by their ttl",
    "dead_lettered": "Messages moved to the dead-letter queue",
}
METRICS_TICK = 1.0  # seconds: scrapes of one process within one tick share one computation of the queue families


@dataclass
class QueueTotals:
    """Sums over every queue a scrape covers."""

    queues: int = 0
    gauges: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GAUGES, 0))
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, stats: QueueStats) -> None:
        self.queues += 1
        for name in GAUGES:
            self.gauges[name] += getattr(stats, name)
        for name in COUNTERS:
            self.counters[name] += stats.counters.get(name, 0)


class QueueCollector(Collector):
    """The queue families of one scrape: per-queue series (`queue` label) for the queues in `series`, and
    restmq_queues plus restmq_queues_* sums, without labels, over all of them."""

    def __init__(self, series: list[QueueStats], totals: QueueTotals) -> None:
        self.series = series
        self.totals = totals

    def collect(self) -> Iterator[Any]:
        for name, text in GAUGES.items():
            family = GaugeMetricFamily(f"restmq_queue_{name}", text, labels=["queue"])
            for s in self.series:
                family.add_metric([s.queue], getattr(s, name))
            yield family
        for name, text in COUNTERS.items():
            counter = CounterMetricFamily(f"restmq_queue_{name}", text, labels=["queue"])
            for s in self.series:
                counter.add_metric([s.queue], s.counters.get(name, 0))
            yield counter
        yield GaugeMetricFamily("restmq_queues", "Queues listed (those the scrape's token covers)", self.totals.queues)
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(f"restmq_queues_{name}", f"{text}, all queues", self.totals.gauges[name])
        for name, text in COUNTERS.items():
            yield CounterMetricFamily(f"restmq_queues_{name}", f"{text}, all queues", self.totals.counters[name])


async def queue_families(service: QueueService, patterns: tuple[str, ...] | None) -> bytes:
    """The queue families in the text format. Every queue is read, a page at a time (one pipelined call per
    node and page), for the totals; only the first Limits.metrics_queues by name keep their own series."""
    covers = listings.covers_of(patterns)
    series: list[QueueStats] = []
    totals = QueueTotals()
    async for names in service.every_page(covers):
        stats = await service.stats(names)
        for one in stats:
            totals.add(one)
        series += stats[: max(0, service.limits.metrics_queues - len(series))]
    registry = CollectorRegistry()
    registry.register(QueueCollector(series, totals))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    """GET /metrics: the Prometheus text format (with a token: only the queues it covers, like the listings).
    The queue families are computed at most once a second per process and token scope, however many scrape."""
    token = await authorize(request, CONSUMER, None, "read")  # cached: the guard has just checked it
    service: QueueService = request.app.state.service
    compute = functools.partial(queue_families, service)
    families = shared(request.app.state, "metrics_snapshots", lambda: Snapshots(compute, METRICS_TICK))
    queues = await families.get(token.queues if token else None)
    process = CollectorRegistry()
    streams = GaugeMetricFamily(
        "restmq_process_streams",
        "Streaming connections open on this process",
        value=request.app.state.streams.consumer_count(),
    )
    process.register(_Fixed([streams]))
    body = generate_latest(REGISTRY) + queues + generate_latest(process)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Fixed(Collector):
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families
