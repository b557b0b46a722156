"""The two hottest requests, served without the router.

`GET /q/<queue>` and a form `POST /q/<queue>`, both without a query string, are most of a busy
server's traffic. Starlette's router, endpoint wrappers and exception middleware cost about as
much CPU as the work itself, so these two skip them: the same access check, form parser, service
call and error responses as the routes in routes.py, called directly. Every other request,
these two with any query parameter included, takes the router.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from restmq.core.model import PopMode
from restmq.core.names import check_queue_name
from restmq.core.service import QueueService
from restmq.errors import MissingField, RestMQError
from restmq.web import rest
from restmq.web.auth import CONSUMER, PRODUCER, authorize
from restmq.web.errors import restmq_error
from restmq.web.http import read_form

FORM = b"application/x-www-form-urlencoded"
NO_STORE = (b"cache-control", b"no-store")
EMPTY = [NO_STORE]
STOPPED = [NO_STORE, (b"x-restmq-status", b"stop")]
JSON_HEADERS = (b"content-type", b"application/json")
TEXT_HEADERS = (b"content-type", b"text/plain; charset=utf-8")
REPLAYED = (b"idempotent-replayed", b"true")


def _hot_queue(scope: Scope) -> str | None:
    """The queue of a hot request, or None for anything the router must handle."""
    if scope["type"] != "http" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith("/q/") or "/" in path[3:] or len(path) == 3:
        return None
    method = scope["method"]
    if method == "GET":
        return path[3:]
    if method == "POST":
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if content_type.split(b";", 1)[0].strip().lower() == FORM:
            return path[3:]
    return None


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    if body:
        headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _take(request: Request, service: QueueService, queue: str, send: Send) -> None:
    await authorize(request, CONSUMER, queue, "read")
    result = await service.get(queue, mode=PopMode.TAKE, count=1, lease=0.0, wait=0.0)
    if not result.messages:
        await _send(send, 204, STOPPED if result.stopped else EMPTY)
        return
    message = result.messages[0]
    body = orjson.dumps(
        {"key": message.key, "value": message.value, "count": message.count}, option=orjson.OPT_APPEND_NEWLINE
    )
    await _send(send, 200, [NO_STORE, JSON_HEADERS], body)


async def _add(request: Request, service: QueueService, queue: str, send: Send) -> None:
    await authorize(request, PRODUCER, queue, "write")
    fields = await read_form(request, service.limits.max_body)
    value = fields.get("value", fields.get("msg"))
    if value is None:
        raise MissingField("missing form field 'value' (or 'msg')")
    result = await service.add(queue, [value], rest.add_options(request, fields))
    headers = [TEXT_HEADERS, REPLAYED] if result.duplicate else [TEXT_HEADERS]
    await _send(send, 200, headers, f"{result.keys(queue)[0]}\r\n".encode())


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue = _hot_queue(scope)
        if queue is None:
            await self.app(scope, receive, send)
            return
        take = scope["method"] == "GET"
        scope["endpoint"] = rest.get_message if take else rest.add_message  # names the request in the metrics
        request = Request(scope, receive)
        try:
            check_queue_name(queue)  # 400 before 401, as on the router's routes
            service: QueueService = scope["app"].state.service
            await (_take if take else _add)(request, service, queue, send)
        except RestMQError as exc:
            await (await restmq_error(request, exc))(scope, receive, send)
