"""The hottest requests, served without Starlette's router.

Requests on `/q/<queue>` (and acks on `/q/<queue>/<key>`), `/c/<queue>` and `/sse/<queue>` are
most of a busy server's traffic. The router, its endpoint wrappers and the exception middleware
cost about as much CPU as a single-message GET itself, and every open stream keeps their frames
alive (about 4 KiB each).
So these requests go straight to the endpoint that routes.py gives their path (access check
included); errors become the same JSON answers.

A plain `GET /q/<queue>` (or one with only `?lease=<seconds>`, or `?lease=<seconds>&ack=<key>`), a
form `POST /q/<queue>` and an ack (`DELETE /q/<queue>/<key>`), without any other query parameter,
take a shorter road still: the same access check, form parser and service call, written out without
building a Response.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from restmq.core.model import PopMode, PopResult, SettleAction
from restmq.core.names import check_queue_name
from restmq.core.service import QueueService
from restmq.errors import MissingField, RestMQError
from restmq.web import rest
from restmq.web.auth import CONSUMER, PRODUCER, Endpoint, authorize
from restmq.web.errors import restmq_error
from restmq.web.http import read_form
from restmq.web.shapes import Message, Settled

# Route templates served directly; no earlier route in the table matches their paths.
DIRECT = ("/q/{queue}", "/q/{queue}/{key}", "/c/{queue}", "/sse/{queue}")
FORM = b"application/x-www-form-urlencoded"
NO_STORE = (b"cache-control", b"no-store")
STOPPED = (b"x-restmq-status", b"stop")
JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain; charset=utf-8")
REPLAYED = (b"idempotent-replayed", b"true")
LEASE_ONLY = re.compile(rb"lease=(\d{1,9}(?:\.\d{0,9})?)")  # plain digits: float() takes them, finite
# A worker's ack carried on its next lease: one key (`<key>` or `<key>@<count>`, maybe %-encoded), lease first.
LEASE_ACK = re.compile(rb"lease=(\d{1,9}(?:\.\d{0,9})?)&ack=([A-Za-z0-9_\-.:@%]{1,300})")


def direct_endpoints(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Endpoint]:
    """(method, template) -> the route's endpoint, for the templates in DIRECT."""
    table: dict[tuple[str, str], Endpoint] = {}
    for route in routes:
        if isinstance(route, Route) and route.path in DIRECT:
            for method in route.methods or ():
                table.setdefault((method, route.path), route.endpoint)
    return table


def _template(path: str) -> tuple[str, dict[str, str]] | None:
    """The template and parameters of a one- or two-segment path under a prefix, e.g.
    /q/jobs/jobs:7 -> ("/q/{queue}/{key}", {"queue": "jobs", "key": "jobs:7"}); else None."""
    cut = path.find("/", 1) + 1
    parts = path[cut:].split("/") if cut else []
    if len(parts) == 1 and parts[0]:
        return path[:cut] + "{queue}", {"queue": parts[0]}
    if len(parts) == 2 and all(parts):
        return path[:cut] + "{queue}/{key}", {"queue": parts[0], "key": parts[1]}
    return None


def _is_form(scope: Scope) -> bool:
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    return content_type.split(b";", 1)[0].strip().lower() == FORM


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    if body:
        headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _take(request: Request, service: QueueService, send: Send) -> None:
    """GET /q/<queue> (rest.get_message without parameters)."""
    await _pop(request, service, send, PopMode.TAKE, 0.0)


async def _lease(request: Request, service: QueueService, send: Send) -> None:
    """GET /q/<queue>?lease=S (rest.get_message with `lease` alone)."""
    match = LEASE_ONLY.fullmatch(request.scope["query_string"])
    assert match is not None  # _lean_handler chose this handler by it
    await _pop(request, service, send, PopMode.LEASE, float(match[1]))


async def _lease_ack(request: Request, service: QueueService, send: Send) -> None:
    """GET /q/<queue>?lease=S&ack=<key> (rest.get_message with `lease` and one `ack`)."""
    match = LEASE_ACK.fullmatch(request.scope["query_string"])
    assert match is not None  # _lean_handler chose this handler by it
    ack = unquote(match[2].decode()) if b"%" in match[2] else match[2].decode()
    queue = request.path_params["queue"]
    await authorize(request, CONSUMER, queue, "read")
    result = await service.lease_after_acks(queue, [ack], lease=float(match[1]))
    acked = (b"x-restmq-ack", rest.ack_outcomes([ack], result).encode())
    await _answer(send, result, acked)


async def _pop(request: Request, service: QueueService, send: Send, mode: PopMode, lease: float) -> None:
    queue = request.path_params["queue"]
    await authorize(request, CONSUMER, queue, "read")
    await _answer(send, await service.get(queue, mode=mode, count=1, lease=lease, wait=0.0))


async def _answer(send: Send, result: PopResult, *extra: tuple[bytes, bytes]) -> None:
    if not result.messages:
        await _send(send, 204, [NO_STORE, STOPPED, *extra] if result.stopped else [NO_STORE, *extra])
        return
    message = result.messages[0]
    data: Message = {"key": message.key, "value": message.value, "count": message.count}
    await _send(send, 200, [NO_STORE, JSON, *extra], orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE))


async def _add(request: Request, service: QueueService, send: Send) -> None:
    """POST /q/<queue> with a form (rest.add_message without parameters)."""
    queue = request.path_params["queue"]
    await authorize(request, PRODUCER, queue, "write")
    fields = await read_form(request, service.limits.max_body)
    value = fields.get("value", fields.get("msg"))
    if value is None:
        raise MissingField("missing form field 'value' (or 'msg')")
    result = await service.add(queue, [value], rest.add_options(request, fields))
    body = f"{result.keys(queue)[0]}\r\n".encode()
    await _send(send, 200, [TEXT, REPLAYED] if result.duplicate else [TEXT], body)


async def _ack(request: Request, service: QueueService, send: Send) -> None:
    """DELETE /q/<queue>/<key> (rest.ack_message without parameters)."""
    queue, key = request.path_params["queue"], request.path_params["key"]
    await authorize(request, CONSUMER, queue, "read")
    count = await service.settle(queue, key, SettleAction.ACK)
    settled: Settled = {"queue": queue, "key": key, "count": count, "status": SettleAction.ACK}
    await _send(send, 200, [JSON], orjson.dumps(settled, option=orjson.OPT_APPEND_NEWLINE))


Lean = Callable[[Request, QueueService, Send], Awaitable[None]]


def _lean_handler(template: str, method: str, scope: Scope) -> Lean | None:
    """The lean handler of this request, or None when it takes its route's endpoint."""
    query = scope["query_string"]
    if template == "/q/{queue}":
        if method == "GET":
            if not query:
                return _take
            return _lease if LEASE_ONLY.fullmatch(query) else _lease_ack if LEASE_ACK.fullmatch(query) else None
        return _add if method == "POST" and not query and _is_form(scope) else None
    return _ack if method == "DELETE" and not query and template == "/q/{queue}/{key}" else None


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.endpoints = direct_endpoints(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _template(scope["path"]) if scope["type"] == "http" else None
        method = scope.get("method", "")
        endpoint = self.endpoints.get((method, found[0])) if found else None
        if found is None or endpoint is None:
            await self.app(scope, receive, send)
            return
        template, scope["path_params"] = found
        scope["endpoint"] = endpoint  # names the request in the metrics
        request = Request(scope, receive)
        try:
            lean = _lean_handler(template, method, scope)
            if lean is not None:
                check_queue_name(scope["path_params"]["queue"])  # 400 before 401, as in the routes' guard
                await lean(request, scope["app"].state.service, send)
                return
            response = await endpoint(request)
        except RestMQError as exc:
            response = await restmq_error(request, exc)
        await response(scope, receive, send)
