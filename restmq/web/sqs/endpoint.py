"""The SQS entry: an ASGI layer that recognizes SQS requests, authorizes them and runs their operation.

On the main port, only `/` and queue-URL paths (`/<12-digit account>/<name>`) are looked at: a request carrying
`X-Amz-Target: AmazonSQS.<Operation>` (JSON 1.0) or an `Action` parameter (query protocol, in the query string
or a form body) is SQS; everything else (the 2010 `POST /` form with `queue=`/`value=`, the dashboard) goes on
untouched, its body given back as read. Other paths (the hot /q/ routes) cost one string test. On --sqs-port,
every request is SQS.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restmq.errors import BackendUnavailable, Forbidden, PayloadTooLarge, RestMQError, Unauthorized
from restmq.web.errors import error_response
from restmq.web.http import read_body
from restmq.web.observe import request_id
from restmq.web.sqs import context, messages, queues
from restmq.web.sqs.auth import authorize
from restmq.web.sqs.context import Context
from restmq.web.sqs.errors import SqsError
from restmq.web.sqs.protocol import (
    TARGET_PREFIX,
    SqsRequest,
    from_form,
    from_json,
    parse_form_body,
    render,
    render_error,
)

QUEUE_PATH = re.compile(r"/\d{12}/[^/]{1,200}")
FORM = "application/x-www-form-urlencoded"

Operation = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]
# operation -> (handler, right it needs on the queue)
OPERATIONS: dict[str, tuple[Operation, str]] = {
    "CreateQueue": (queues.create_queue, "admin"),
    "GetQueueUrl": (queues.get_queue_url, "read"),
    "ListQueues": (queues.list_queues, "read"),
    "DeleteQueue": (queues.delete_queue, "admin"),
    "PurgeQueue": (queues.purge_queue, "admin"),
    "GetQueueAttributes": (queues.get_queue_attributes, "read"),
    "SetQueueAttributes": (queues.set_queue_attributes, "admin"),
    "TagQueue": (queues.tag_queue, "admin"),
    "UntagQueue": (queues.untag_queue, "admin"),
    "ListQueueTags": (queues.list_queue_tags, "read"),
    "ListDeadLetterSourceQueues": (queues.list_dead_letter_source_queues, "read"),
    "SendMessage": (messages.send_message, "write"),
    "SendMessageBatch": (messages.send_message_batch, "write"),
    "ReceiveMessage": (messages.receive_message, "read"),
    "DeleteMessage": (messages.delete_message, "read"),
    "DeleteMessageBatch": (messages.delete_message_batch, "read"),
    "ChangeMessageVisibility": (messages.change_message_visibility, "read"),
    "ChangeMessageVisibilityBatch": (messages.change_message_visibility_batch, "read"),
    "StartMessageMoveTask": (queues.start_message_move_task, "admin"),
}
UNSUPPORTED = frozenset(
    {"AddPermission", "RemovePermission", "ListMessageMoveTasks", "CancelMessageMoveTask"}
)  # fmt: skip


class SqsEndpoint:
    def __init__(self, app: ASGIApp, sqs_port: int | None = None) -> None:
        self.app = app
        self.sqs_port = sqs_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        server = scope.get("server")
        own_port = self.sqs_port is not None and server is not None and server[1] == self.sqs_port
        if not own_port and path != "/" and not QUEUE_PATH.fullmatch(path):
            await self.app(scope, receive, send)
            return
        await self._maybe_sqs(scope, receive, send, must=own_port or path != "/")

    async def _maybe_sqs(self, scope: Scope, receive: Receive, send: Send, *, must: bool) -> None:
        headers = dict(scope["headers"])
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        query = scope.get("query_string", b"")
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
        is_form = scope["method"] == "POST" and content_type == FORM
        if not (must or target.startswith(TARGET_PREFIX) or b"Action=" in query or is_form):
            await self.app(scope, receive, send)  # GET / (dashboard), POST / with JSON: RestMQ's own
            return
        request = Request(scope, receive)
        query_mode = not target.startswith(TARGET_PREFIX)
        known = must or not query_mode or b"Action=" in query
        try:
            body = await read_body(request, request.app.state.settings.limits.max_body)
        except RestMQError as exc:  # not known to be SQS yet (a 2010 form, say): RestMQ's own error
            await (
                _answer_error(send, _as_sqs(exc), query_mode) if known else error_response(exc)(scope, receive, send)
            )
            return
        known = known or body.startswith(b"Action=") or b"&Action=" in body
        try:
            if target.startswith(TARGET_PREFIX):
                sqs = from_json(target, body)
            else:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else []
                if is_form:
                    try:
                        pairs += parse_form_body(body)
                    except SqsError:
                        if known:
                            raise
                        pairs = []  # not SQS's to refuse: the form's own route answers it
                if not known and not any(key == "Action" for key, _ in pairs):
                    await self.app(scope, _replay(body, receive), send)  # the 2010 form: queue=, value=
                    return
                sqs = from_form(pairs)
                if scope["path"] != "/" and "QueueUrl" not in sqs.params:
                    sqs.params["QueueUrl"] = scope["path"]  # the query protocol's requests go to the queue's URL
            await self._run(scope, request, sqs, body, send)
        except SqsError as exc:
            await _answer_error(send, exc, query_mode)
        except RestMQError as exc:
            await _answer_error(send, _as_sqs(exc), query_mode)

    async def _run(self, scope: Scope, request: Request, sqs: SqsRequest, body: bytes, send: Send) -> None:
        found = OPERATIONS.get(sqs.operation)
        if found is None:
            if sqs.operation in UNSUPPORTED:
                raise SqsError("UnsupportedOperation", f"{sqs.operation} is not supported by RestMQ.")
            raise SqsError("InvalidAction", f"The action {sqs.operation[:100]} is not valid for this endpoint.")
        handler, right = found
        scope["endpoint"] = handler  # names the request in the metrics (restmq_http_request_duration_seconds)
        key = await authorize(HTTPConnection(scope), body, _queue_of(sqs.operation, sqs.params), right)
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        ctx = Context(
            request.app.state.service,
            context.base_url(scope.get("scheme", "http"), host, scope.get("server")),
            request_id.get(),
        )
        if key is not None:
            ctx.allows = key.allows
        result = await handler(ctx, sqs.params)
        payload, content_type = render(sqs, result, ctx.request_id)
        await _send(send, 200, [(b"content-type", content_type), _request_id_header(ctx.request_id)], payload)


def _queue_of(operation: str, params: dict[str, Any]) -> str | None:
    """The queue a request is about, for authorization: None only for ListQueues (any queue the key covers;
    the listing is filtered); "" for a request that names no valid queue, which only a key covering every
    queue ("*") may make before the operation refuses it."""
    if operation == "ListQueues":
        return None
    try:
        if operation == "StartMessageMoveTask":
            return context.name_from_arn(params.get("SourceArn"))  # the destination is checked by the operation
        if "QueueUrl" in params:
            return context.name_from_url(params["QueueUrl"])
        name = params.get("QueueName")
        return name if isinstance(name, str) and context.is_sqs_name(name) else ""
    except SqsError:
        return ""


def _as_sqs(exc: RestMQError) -> SqsError:
    if isinstance(exc, BackendUnavailable):
        return SqsError("ServiceUnavailable", exc.message, 503)
    if isinstance(exc, Unauthorized | Forbidden):
        return SqsError("AccessDenied", exc.message, 403)
    if isinstance(exc, PayloadTooLarge):
        return SqsError("InvalidParameterValue", exc.message, 413 if "request body" in exc.message else 400)
    if exc.status < 500:
        return SqsError("InvalidParameterValue", exc.message, 400)
    return SqsError("InternalError", exc.message, exc.status)


def _request_id_header(rid: str) -> tuple[bytes, bytes]:
    return (b"x-amzn-requestid", rid.encode())  # where SDKs read a JSON 1.0 reply's RequestId


async def _answer_error(send: Send, exc: SqsError, query: bool) -> None:
    body, headers = render_error(exc, query, request_id.get())
    await _send(send, exc.status, [*headers, _request_id_header(request_id.get())], body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
