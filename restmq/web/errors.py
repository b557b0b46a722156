"""Errors to JSON: every failure answers {"error": text, "code": STABLE_CODE} with its status."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from restmq.core.names import QUEUE_NAME_RULE
from restmq.errors import BackendUnavailable, InvalidQueueName, RestMQError, TooManyStreams, Unauthorized
from restmq.web.http import CALLBACK, jsonp_callback
from restmq.web.observe import BACKEND_ERRORS

log = logging.getLogger("restmq.web")


def error_response(exc: RestMQError) -> Response:
    headers = {"Retry-After": "1"} if isinstance(exc, BackendUnavailable | TooManyStreams) else None
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": exc.challenge}
    return Response(
        orjson.dumps(exc.to_dict(), option=orjson.OPT_APPEND_NEWLINE), exc.status, headers, "application/json"
    )


async def restmq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RestMQError)
    if isinstance(exc, BackendUnavailable):
        BACKEND_ERRORS.inc()
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


class InputGuard:
    """Refuse, before any handler runs (so a rejected request never consumes a message): a callback=
    that http.jsonp_callback refuses (JSONP off, or a bad name), and an encoded slash in the path —
    queue names cannot contain one, and decoded it would silently route the request elsewhere.
    An accepted callback name is left in the scope (http.CALLBACK): the rule runs once per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            try:
                if b"%2f" in scope.get("raw_path", b"").lower():
                    raise InvalidQueueName(f"invalid queue name: {QUEUE_NAME_RULE}")
                query = scope.get("query_string", b"")
                # "%": the parameter's name may be percent-encoded
                if b"callback" in query.lower() or b"%" in query:
                    scope[CALLBACK] = jsonp_callback(HTTPConnection(scope))
            except RestMQError as exc:
                if scope["type"] == "http":
                    await error_response(exc)(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
                return
        await self.app(scope, receive, send)
