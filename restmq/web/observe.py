"""Observability: request ids, JSON logs, and Prometheus metrics.

Queue metrics (depth, leased, counters) come from the backend at scrape time, so every server
process reports the same cluster-wide numbers (restmq/web/queue_metrics.py); HTTP latency and
backend errors are per process.
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

from restmq.core import deadline
from restmq.core.service import QueueService
from restmq.errors import RestMQError
from restmq.web import queue_metrics
from restmq.web.auth import CONSUMER, authorize
from restmq.web.browser import NOSNIFF, PAGE_HEADERS
from restmq.web.ingest import syslog_families
from restmq.web.push import push_families
from restmq.web.snapshots import Snapshots, shared

log = logging.getLogger("restmq.web")
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
    """Give each request an id (X-Request-ID, kept when the client sends a sane one), echo it, time the
    handler, and run it under its backend deadline (`backend_timeout` seconds; 0: none).

    It is also the last resort: an exception no handler turned into an answer becomes a JSON 500 naming
    the request id, logged here once with its traceback. Left to the HTTP server, it would be logged
    again without the id and the keep-alive connection reset."""

    def __init__(self, app: ASGIApp, backend_timeout: float = 0.0) -> None:
        self.app = app
        self.backend_timeout = backend_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the handshake's backend work; each frame gets its own
                bound = deadline.start(self.backend_timeout)
                try:
                    await self.app(scope, receive, send)
                finally:
                    deadline.finish(bound)
                return
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
        rid = incoming if incoming and _VALID_ID.fullmatch(incoming) else f"{_ID_PREFIX}{next(_ids):x}"
        token = request_id.set(rid)
        bound = deadline.start(self.backend_timeout)
        started = time.perf_counter()
        answering = False

        async def send_with_id(message: Message) -> None:
            nonlocal answering
            if message["type"] == "http.response.start":
                answering = True
                deadline.answering()  # a streamed answer's later backend calls: bound one by one
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
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not answering:
                await _internal_error(rid, send_with_id)
            # else the response is cut short: returning without ending it makes the server close the connection
        finally:
            deadline.finish(bound)
            request_id.reset(token)


async def _internal_error(rid: str, send: Send) -> None:
    error = RestMQError(f"internal error (request {rid}); see the server log")
    body = orjson.dumps(error.to_dict(), option=orjson.OPT_APPEND_NEWLINE)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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


async def metrics(request: Request) -> Response:
    """Process, request and queue metrics in the Prometheus text format: per-queue series (`queue` label) for the
    first --metrics-queues queues by name (1000 unless set), and `restmq_queues` plus `restmq_queues_*` totals over
    every queue the caller may see (with a token: only the queues it covers, like the listings)."""
    # The queue families are computed at most once a second per process and token scope, however many scrape.
    token = await authorize(request, CONSUMER, None, "read")  # cached: the guard has just checked it
    service: QueueService = request.app.state.service
    compute = functools.partial(queue_metrics.families, service)
    families = shared(request.app.state, "metrics_snapshots", lambda: Snapshots(compute, queue_metrics.TICK))
    queues = await families.get(token.queues if token else None)
    process = CollectorRegistry()
    streams = GaugeMetricFamily(
        "restmq_process_streams",
        "Streaming connections open on this process",
        value=request.app.state.streams.consumer_count(),
    )
    long_polls = GaugeMetricFamily(
        "restmq_process_long_polls_waiting",
        "Long-polls of this process waiting for a message right now",
        value=service.waiters.parked(),
    )
    state = request.app.state
    ticks = CounterMetricFamily(
        "restmq_process_schedule_ticks",
        "Schedule ticks this process published (docs/schedules.md)",
        value=state.schedule_runner.fired,
    )
    own = [streams, long_polls, *syslog_families(getattr(state, "syslog", None)), ticks]
    own += push_families(getattr(state, "push", None))
    process.register(_Fixed(own))
    body = generate_latest(REGISTRY) + queues + generate_latest(process)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Fixed(Collector):
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families
