"""HEAD never hands out a message.

Starlette answers HEAD with a route's GET endpoint, and the server drops the body: on the routes that
take, lease or stream messages, a HEAD consumed messages nobody would ever see. The route table sends
HEAD on those routes here instead (ahead of their GET routes, with the same access rule), and the
answer is the status and headers the GET would get now, from the queue's statistics: nothing is read,
leased, or subscribed to. Routes that only look (statistics, peek, pages) answer HEAD with their GET;
tests/unit/test_head_routes.py fails for a GET route that is in neither group.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from restmq.core.model import FlowStatus
from restmq.core.names import check_queue_name
from restmq.errors import NotFound
from restmq.web import rest, streams, ui
from restmq.web.auth import CONSUMER, authorize
from restmq.web.http import callback_of

NO_STORE = {"Cache-Control": "no-store"}
STOPPED = {**NO_STORE, "X-RestMQ-Status": "stop"}


async def _ready(request: Request, queue: str) -> tuple[bool, bool]:
    """(a GET would get a message now, the queue is stopped), after the GET's own argument checks."""
    service = rest.service_of(request)
    service.check_get(queue, **rest.read_arguments(request))
    (stats,) = await service.stats([queue])
    stopped = stats.settings.status is FlowStatus.STOP
    return stats.length > 0 and not stopped, stopped


async def queue(request: Request) -> Response:
    """HEAD /q/<queue> (with any GET parameters): 200 when a message is ready, else 204."""
    ready, stopped = await _ready(request, request.path_params["queue"])
    if ready:
        return Response(status_code=200, headers=NO_STORE, media_type="application/json")
    return Response(status_code=204, headers=STOPPED if stopped else NO_STORE)


async def index(request: Request) -> Response:
    """HEAD /?queue=<q>: 200 when a message is ready, else 404 as GET answers; HEAD / is the dashboard's."""
    name = request.query_params.get("queue")
    if name is None:
        return await ui.dashboard(request)
    await authorize(request, CONSUMER, check_queue_name(name), "read")
    ready, _ = await _ready(request, name)
    if not ready:
        raise NotFound(f"queue {name} is empty", code="QUEUE_EMPTY")
    return Response(status_code=200, headers=NO_STORE, media_type="application/json")


async def stream(request: Request) -> Response:
    """HEAD /c/<queue>, /sse/<queue>: the stream's status and headers; no consumer is registered."""
    streams.lease_of(request)
    callback = callback_of(request)  # errors.InputGuard has refused a bad one, as on GET
    if request.url.path.startswith("/sse/") or "text/event-stream" in request.headers.get("accept", ""):
        media = "text/event-stream"
    else:
        media = "application/javascript" if callback else "application/x-ndjson"
    return _stream_headers(media)


async def stats_stream(request: Request) -> Response:
    """HEAD /stats/stream: the event stream's headers for EventSource clients, else the GET's answer
    (the statistics of a queue named "stream")."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return await ui.stats_stream(request)
    await authorize(request, CONSUMER, None, "read")
    return _stream_headers("text/event-stream")


def _stream_headers(media: str) -> Response:
    response = Response(status_code=200, headers=streams.STREAM_HEADERS, media_type=media)
    del response.headers["content-length"]  # a stream has none
    return response
