"""`--compat 2010`, the JSON protocol's side: `POST /queue` answered in the 2010 shapes, and the WebSocket echo.
Chosen by restmq/web/compat2010.py's route table; see docs/compat.md."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from restmq.core import protocol
from restmq.core.dispatch import Consumer, Streams
from restmq.errors import BadRequest, InvalidJSON, RestMQError
from restmq.web import rest, streams
from restmq.web.auth import CONSUMER, PRODUCER, authorize
from restmq.web.py2json import dumps

TEXT = "text/plain; charset=UTF-8"  # 2010: text/html; charset=UTF-8 (cyclone's default)
JSON = "application/json"
MALFORMED = "Malformed JSON. Invalid format."  # 2010's text for a body without a JSON object holding a cmd
# A 2010 command's reply fields, in the order 2010 set them (where keys collide, the order decides the bytes)
REPLY_FIELDS = {
    "add": ("queue", "value", "key"),
    "get": ("queue", "value", "key", "count"),
    "take": ("queue", "value", "key"),  # no count in 2010
    "del": ("queue", "deleted", "key"),
}
INPUT_ERRORS = (BadRequest.status, 404, 409, 413)  # the JSON protocol answers these as 200 {"error": ...}


async def json_protocol(request: Request) -> Response:
    """Malformed JSON or no `cmd`: 400. An unknown command: 200 {"error": "null resultset"}. A command's own
    failure (a missing or wrong field, an empty queue): 200 {"error": text}. Access and backend errors keep
    their statuses."""
    try:
        command = protocol.load_command(await rest.command_text(request))
    except InvalidJSON:
        raise InvalidJSON(MALFORMED) from None
    if not command.get("cmd"):
        raise InvalidJSON(MALFORMED)
    if not isinstance(command["cmd"], str) or command["cmd"] not in protocol.RIGHTS:
        return Response(dumps({"error": "null resultset"}), media_type=TEXT)
    try:
        protocol.check_fields(command)
        queue, right = protocol.target(command)
    except RestMQError as exc:
        return _command_error(exc)
    await authorize(request, PRODUCER if right == "write" else CONSUMER, queue, right)
    try:
        reply = await protocol.execute(rest.service_of(request), command)
    except RestMQError as exc:
        return _command_error(exc)
    if "error" in reply:
        reply = {"error": reply["error"]}  # 2010 had no error codes
    elif command["cmd"] in REPLY_FIELDS:
        reply = {name: reply[name] for name in REPLY_FIELDS[command["cmd"]]}
    return Response(dumps(reply), media_type=JSON)


def _command_error(exc: RestMQError) -> Response:
    if exc.status not in INPUT_ERRORS:
        raise exc
    return Response(dumps({"error": exc.message}), media_type=JSON)


# -- /ws/<queue> -------------------------------------------------------------------------------------------


async def websocket(ws: WebSocket) -> None:
    """As the default /ws/<queue>, but a text frame that is not a command comes back as it was sent: 2010 echoed
    every frame, and its contrib/interact.html page shows the echo."""
    await streams.serve_websocket(ws, command_or_echo)


async def command_or_echo(
    ws: WebSocket, service: Any, consumers: Streams, consumer: Consumer, queue: str, raw: str | bytes
) -> str:
    if isinstance(raw, str) and not _names_a_command(raw):
        return raw
    return await streams.command_reply(ws, service, consumers, consumer, queue, raw)


def _names_a_command(frame: str) -> bool:
    """A JSON object with a `cmd` field: anything else is chat for the echo."""
    try:
        return "cmd" in protocol.load_command(frame)
    except InvalidJSON:
        return False
