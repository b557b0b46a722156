"""Observability: request ids, JSON logs, and Prometheus metrics.

Queue metrics (depth, leased, counters) come from the backend at scrape time, so every server
process reports the same cluster-wide numbers; HTTP latency and backend errors are per process.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restmq.core.model import QueueStats
from restmq.web.auth import CONSUMER, authorize
from restmq.web.browser import NOSNIFF, PAGE_HEADERS

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


def _is_html(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"text/html")
    return False


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
                headers = message.get("headers", [])
                # Every response: its request id and nosniff; HTML pages: no framing (browser.py says why).
                if _is_html(headers):
                    message["headers"] = [*headers, (b"x-request-id", rid.encode()), NOSNIFF, *PAGE_HEADERS]
                else:
                    message["headers"] = [*headers, (b"x-request-id", rid.encode()), NOSNIFF]
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


class QueueCollector(Collector):
    """Per-queue families from one stats snapshot taken just before the scrape."""

    def __init__(self, stats: list[QueueStats], consumers_here: int) -> None:
        self.stats = stats
        self.consumers_here = consumers_here

    def collect(self) -> Iterator[Any]:
        gauges = {
            "length": "Messages ready to deliver",
            "delayed": "Messages waiting for their delay",
            "leased": "Messages leased and not yet acked",
            "dead": "Messages waiting in the dead-letter queue",
            "consumers": "Streaming consumers on all server processes",
        }
        for name, text in gauges.items():
            family = GaugeMetricFamily(f"restmq_queue_{name}", text, labels=["queue"])
            for s in self.stats:
                family.add_metric([s.queue], getattr(s, name))
            yield family
        counters = {
            "added": "Messages added",
            "delivered": "Deliveries (GET, lease, stream)",
            "acked": "Leases acknowledged",
            "redelivered": "Leases that expired (the message went back to its queue)",
            "expired": "Messages dropped by their ttl",
            "dead_lettered": "Messages moved to the dead-letter queue",
        }
        for name, text in counters.items():
            counter = CounterMetricFamily(f"restmq_queue_{name}", text, labels=["queue"])
            for s in self.stats:
                counter.add_metric([s.queue], s.counters.get(name, 0))
            yield counter
        yield GaugeMetricFamily(
            "restmq_process_streams", "Streaming connections open on this process", value=self.consumers_here
        )


async def metrics(request: Request) -> Response:
    """GET /metrics: the Prometheus text format (with a token: only the queues it covers, like the listings)."""
    token = await authorize(request, CONSUMER, None, "read")  # cached: the guard has just checked it
    service = request.app.state.service
    stats = [s for s in await service.stats() if token is None or token.covers(s.queue)]
    registry = CollectorRegistry()
    registry.register(QueueCollector(stats, request.app.state.streams.consumer_count()))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
