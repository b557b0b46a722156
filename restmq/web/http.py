"""Request parsing and response rendering shared by the HTTP handlers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope

from restmq.core.deadline import time_limit
from restmq.core.names import check_callback
from restmq.errors import InvalidParameter, InvalidValue, JsonpDisabled, PayloadTooLarge, RequestTimeout

JSON = "application/json"
CALLBACK = "restmq.callback"  # the scope key under which errors.InputGuard leaves the checked callback name


def jsonp_callback(conn: HTTPConnection) -> str | None:
    """The request's JSONP callback name, or None: the JSONP rule. With --jsonp a callback= must be a valid
    name (else 400 CALLBACK_INVALID); without it, any callback= is a 400 (JSONP lets any web page read, and
    consume, across origins). errors.InputGuard applies it once per request, before any handler runs;
    handlers read its verdict with callback_of."""
    callback = conn.query_params.get("callback")
    if callback is None:
        return None
    if not conn.app.state.settings.jsonp:
        raise JsonpDisabled("JSONP is off: callback= is refused unless the server runs with --jsonp")
    return check_callback(callback)


def callback_of(conn: HTTPConnection) -> str | None:
    """The callback name errors.InputGuard accepted for this request, or None."""
    callback: str | None = conn.scope.get(CALLBACK)
    return callback


def render(request: Request, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON, or JSONP `name(<json>);` when the request carries a callback= parameter and JSONP is on."""
    body = orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    callback = callback_of(request)
    if callback is not None:
        return Response(b"%s(%s);\n" % (callback.encode(), body[:-1]), status, headers, "application/javascript")
    return Response(body, status, headers, JSON)


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case), undecoded."""
    return next((value for key, value in scope["headers"] if key == name), None)


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), as Starlette's Headers.get gives it."""
    value = raw_header(scope, name)
    return None if value is None else value.decode("latin-1")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def prefers_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and accept.find("text/html") < max(accept.find(JSON), 0) + len(accept) * (
        JSON not in accept
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes before and while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        with time_limit(request.app.state.settings.limits.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    return b"".join(chunks)


def decode_text(raw: bytes, what: str = "body") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidValue(f"the {what} is not valid UTF-8 (byte {exc.start})") from exc


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """Form fields from an urlencoded or multipart body (first value of each name wins)."""
    if media_type(request) == "multipart/form-data":
        raw = await read_body(request, limit)  # the whole body counts, chunked or not

        async def body() -> AsyncGenerator[bytes, None]:
            yield raw

        try:
            form = await MultiPartParser(
                request.headers, body(), max_files=0, max_fields=100, max_part_size=limit
            ).parse()
        except MultiPartException as exc:
            raise InvalidValue(f"malformed multipart body: {exc.message}") from exc
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, value)
        return fields
    text = decode_text(await read_body(request, limit))
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidValue(f"malformed form body: {exc}") from exc
    fields = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def number(source: Any, name: str, default: float = 0.0) -> float:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameter(f"{name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidParameter(f"{name} must be a finite number")
    return value


def integer(source: Any, name: str, default: int = 0) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"{name} must be an integer, got {raw!r}") from None
