"""`POST /collectd/data` and `POST /collectd/event`: what collectd's write_http plugin posts (restmq/ingest/
collectd.py parses it), one message per value list or notification, into the server's collectd queues
(--collectd-data-queue, --collectd-event-queue). A producer: write access on that queue, as for an add."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from restmq.ingest import collectd
from restmq.web import shapes
from restmq.web.auth import PRODUCER, authorize
from restmq.web.http import media_type, read_body, render
from restmq.web.rest import service_of

Parser = Callable[[bytes, str], list[str]]


async def data(request: Request) -> Response:
    """collectd value lists, `Format "JSON"` (an array of value-list objects) or `Format "Command"` (PUTVAL
    lines): each becomes one message, a JSON object as collectd's JSON format describes a value list. All or
    nothing; answers the keys."""
    return await _ingest(request, request.app.state.settings.collectd_data_queue, collectd.value_lists)


async def event(request: Request) -> Response:
    """collectd notifications: write_http's JSON (`Notifications true`), PUTNOTIF lines, or the text the exec
    plugin's NotificationExec receives. Each becomes one message. All or nothing; answers the keys."""
    return await _ingest(request, request.app.state.settings.collectd_event_queue, collectd.notifications)


async def _ingest(request: Request, queue: str, parse: Parser) -> Response:
    await authorize(request, PRODUCER, queue, "write")
    service = service_of(request)
    values = parse(await read_body(request, service.limits.max_body), media_type(request))
    result = await service.add(queue, values)
    keys: shapes.Keys = {"keys": result.keys(queue)}
    return render(request, keys)
