"""REST handlers: parse the request, call one QueueService method, render the reply."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from restmq.core import protocol
from restmq.core.model import Message, PopMode, PopResult, QueueSettings, QueueStats, SettleAction
from restmq.core.names import check_queue_name
from restmq.core.service import ACK_CODES, DEAD_SUFFIX, AddOptions, QueueService
from restmq.errors import InvalidParameter, MissingField, NotFound
from restmq.web import listings, ops, pages, shapes, ui
from restmq.web.auth import CONSUMER, PRODUCER, authorize
from restmq.web.batch import batch_values
from restmq.web.http import (
    callback_of,
    decode_text,
    header,
    integer,
    media_type,
    number,
    prefers_html,
    read_body,
    read_form,
    render,
)
from restmq.web.limits import StreamSlots, client_of

NO_STORE = {"Cache-Control": "no-store"}


def service_of(request: Request) -> QueueService:
    service: QueueService = request.app.state.service
    return service


def _max_body(request: Request) -> int:
    return service_of(request).limits.max_body


def add_options(request: Request, fields: dict[str, str]) -> AddOptions:
    # Without a query string, no QueryParams to build; and the header is read from the raw list: a Starlette
    # lookup of a missing header raises and catches a KeyError (every add without an Idempotency-Key).
    query: Any = request.query_params if request.scope["query_string"] else {}

    def pick(name: str) -> Any:
        return fields if name in fields else query

    return AddOptions(
        priority=integer(pick("priority"), "priority"),
        delay=number(pick("delay"), "delay"),
        ttl=number(pick("ttl"), "ttl"),
        idempotency_key=header(request.scope, b"idempotency-key") or fields.get("id") or query.get("id"),
        group=pick("group").get("group"),  # message groups (docs/semantics.md)
    )


def _message(message: Message) -> shapes.Message:
    return {"key": message.key, "value": message.value, "count": message.count}


async def add_message(request: Request) -> Response:
    """A form (`value=` or `msg=`) adds one message and answers its key as text, `<queue>:<n>\\r\\n`. A JSON array
    (application/json) or NDJSON (application/x-ndjson) adds a batch, all or nothing, answering {"keys": [...]};
    a single JSON document is one message. Any other body is the message text."""
    queue = request.path_params["queue"]
    service = service_of(request)
    kind = media_type(request)
    if kind in ("application/json", "application/x-ndjson", "application/jsonl"):
        raw = await read_body(request, _max_body(request))
        decode_text(raw)
        ndjson = kind != "application/json"
        stripped = raw.lstrip()
        if ndjson or stripped.startswith(b"["):
            values = batch_values(raw, ndjson, service.limits.max_batch)
            result = await service.add(queue, values, add_options(request, {}))
            keys: shapes.Keys = {"keys": result.keys(queue)}
            return render(request, keys, headers=_dup(result.duplicate))
        values = [raw.decode()]  # one JSON document, stored as its text
        result = await service.add(queue, values, add_options(request, {}))
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = await read_form(request, _max_body(request))
        value = fields.get("value", fields.get("msg"))
        if value is None:
            raise MissingField("missing form field 'value' (or 'msg')")
        result = await service.add(queue, [value], add_options(request, fields))
    else:  # any other body is the message itself, as text
        raw = await read_body(request, _max_body(request))
        if not raw and not kind:  # a bare POST (no body, no type) is a mistake, not an empty message
            raise MissingField("missing form field 'value' (or 'msg'), or a request body")
        value = decode_text(raw)
        result = await service.add(queue, [value], add_options(request, {}))
    return PlainTextResponse(f"{result.keys(queue)[0]}\r\n", headers=_dup(result.duplicate))


def _dup(duplicate: bool) -> dict[str, str] | None:
    return {"Idempotent-Replayed": "true"} if duplicate else None


def read_arguments(request: Request) -> dict[str, Any]:
    """mode, count, lease and wait of a GET that hands out messages, from its query string."""
    params = request.query_params
    return {
        "mode": PopMode.LEASE if "lease" in params else PopMode.TAKE,
        "count": integer(params, "count", 1),
        "lease": number(params, "lease"),
        "wait": number(params, "wait"),
    }


async def _get(request: Request, queue: str, acks: list[str] | None = None) -> PopResult:
    arguments, service = read_arguments(request), service_of(request)
    if acks:
        if arguments.pop("mode") is not PopMode.LEASE:
            raise InvalidParameter("ack= goes with lease=: it acknowledges leased messages")
        call = functools.partial(service.lease_after_acks, queue, acks, **arguments)
    else:
        call = functools.partial(service.get, queue, **arguments)
    if arguments["wait"] <= 0:  # answers at once (a negative wait is refused by the service)
        return await call()
    slots: StreamSlots = request.app.state.stream_slots
    with slots.held(client_of(request)):  # a long-poll holds its connection like a stream: it takes a slot
        return await call()


def ack_outcomes(acks: Sequence[str], result: PopResult) -> str:
    """X-RestMQ-Ack: each ack as given, `=ok` or `=` the error code its DELETE would answer, in order."""
    return ", ".join(f"{ack}={ACK_CODES[r.outcome]}" for ack, r in zip(acks, result.acked, strict=True))


def _pop_headers(result: PopResult, acks: list[str]) -> dict[str, str]:
    return {**_stopped_headers(result), "X-RestMQ-Ack": ack_outcomes(acks, result)}


def _stopped_headers(result: PopResult) -> dict[str, str]:
    return {**NO_STORE, "X-RestMQ-Status": "stop"} if result.stopped else NO_STORE


async def get_message(request: Request) -> Response:
    """The oldest message, removed as it is delivered. `lease=S` hides it for S seconds instead (ack with
    DELETE /q/{queue}/{key}, or with `ack=<key>` on the next lease: X-RestMQ-Ack tells each ack's outcome).
    `wait=S` long-polls. `count=N` answers a JSON array of up to N. 204 when nothing is ready (with
    `X-RestMQ-Status: stop` when the queue is stopped)."""
    queue = request.path_params["queue"]
    acks = request.query_params.getlist("ack") if request.scope["query_string"] else []
    result = await _get(request, queue, acks)
    headers = _pop_headers(result, acks) if acks else None
    if "count" in request.query_params:
        if not result.messages:
            return Response(status_code=204, headers=headers or _stopped_headers(result))
        return render(request, [_message(m) for m in result.messages], headers=headers or NO_STORE)
    if not result.messages:
        return Response(status_code=204, headers=headers or _stopped_headers(result))
    return render(request, _message(result.messages[0]), headers=headers or NO_STORE)


async def redrive(request: Request) -> Response:
    """`queue` must be a dead-letter queue `<q>:dead`: its waiting messages move back to `<q>` as new messages.
    Needs admin on `<q>:dead` and write on `<q>`."""
    # The route's guard checked admin on the dead-letter queue; the letters are written into <q>: write there too.
    queue = request.path_params["queue"]
    target = queue.removesuffix(DEAD_SUFFIX)
    if target and target != queue:  # anything else is refused by the service: not a dead-letter queue
        await authorize(request, PRODUCER, target, "write")
    moved = await service_of(request).redrive(queue)
    redriven: shapes.Redriven = {"queue": queue, "target": target, "moved": moved}
    return render(request, redriven)


async def purge_queue(request: Request) -> Response:
    """Remove every message (ready, delayed, leased) and close the queue's streams on every process. Settings and
    counters stay."""
    queue = request.path_params["queue"]
    removed = await service_of(request).purge(queue)
    purged: shapes.Purged = {"queue": queue, "status": removed}
    return render(request, purged)


async def list_queues(request: Request) -> Response:
    """One page of the queues that hold messages (those the caller's token covers), in name order (`limit`,
    `after`); `count` is the number on this page and `next` the `after` of the following page (null on the last).
    HTML when the client prefers text/html."""
    page, _ = await listings.visible_page(request)
    if prefers_html(request) and callback_of(request) is None:
        following = listings.page_link("/q/", page.next, request) if page.next else None
        return HTMLResponse(pages.queue_list(page.queues, following))
    listed: shapes.QueueList = {"queues": page.queues, "count": len(page.queues), "next": page.next}
    return render(request, listed)


async def ack_message(request: Request) -> Response:
    """The message is done and removed. With `count=`, only if it was not delivered again since."""
    return await _settle(request, SettleAction.ACK, 0.0)


async def release_message(request: Request) -> Response:
    """Back to the head of its queue, or after `delay` seconds (query or form field)."""
    fields = await _fields(request)
    return await _settle(request, SettleAction.RELEASE, number(fields, "delay"), fields)


async def extend_message(request: Request) -> Response:
    """Keep the message leased `lease` more seconds from now (query or form field; required)."""
    fields = await _fields(request)
    if "lease" not in fields:
        raise MissingField("missing parameter 'lease' (seconds)")
    return await _settle(request, SettleAction.EXTEND, number(fields, "lease"), fields)


async def _fields(request: Request) -> dict[str, str]:
    fields = dict(request.query_params)
    if media_type(request) in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields.update(await read_form(request, _max_body(request)))
    return fields


async def _settle(
    request: Request, action: SettleAction, seconds: float, fields: dict[str, str] | None = None
) -> Response:
    queue, key = request.path_params["queue"], request.path_params["key"]
    source = fields if fields is not None else request.query_params
    expected = integer(source, "count", -1)
    count = await service_of(request).settle(
        queue, key, action, expected_count=None if expected < 0 else expected, seconds=seconds
    )
    settled: shapes.Settled = {"queue": queue, "key": key, "count": count, "status": action}
    return render(request, settled)


# -- the original index routes ---------------------------------------------------------------


async def index_get(request: Request) -> Response:
    """Without `queue`: the HTML dashboard. With `queue`: pop the oldest message like GET /q/{queue}, but an empty
    queue answers 404 QUEUE_EMPTY."""
    queue = request.query_params.get("queue")
    if queue is None:
        return await ui.dashboard(request)
    await authorize(request, CONSUMER, check_queue_name(queue), "read")
    result = await _get(request, queue)
    if not result.messages:
        raise NotFound(f"queue {queue} is empty", code="QUEUE_EMPTY")
    return render(request, _message(result.messages[0]), headers=NO_STORE)


async def index_post(request: Request) -> Response:
    """Add one message to the queue named by the form field `queue`. Answers the key, `<queue>:<n>\\r\\n`."""
    fields = await read_form(request, _max_body(request))
    queue = fields.get("queue")
    value = fields.get("value", fields.get("msg"))
    if queue is None:
        raise MissingField("missing form field 'queue'")
    if value is None:
        raise MissingField("missing form field 'value'")
    await authorize(request, PRODUCER, check_queue_name(queue), "write")
    result = await service_of(request).add(queue, [value], add_options(request, fields))
    return PlainTextResponse(f"{result.keys(queue)[0]}\r\n", headers=_dup(result.duplicate))


async def command_text(request: Request) -> str:
    """The JSON-protocol command of a POST /queue: the raw body, or the form field `body` (or `msg`) holding it."""
    if media_type(request) in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = await read_form(request, _max_body(request))
        raw = fields.get("body", fields.get("msg"))
        if raw is None:
            raise MissingField("missing form field 'body' holding a JSON command")
        return raw
    return decode_text(await read_body(request, _max_body(request)))


async def json_protocol(request: Request) -> Response:
    """Run one command: add, get (soft get), take, del, ack, release, extend. The command is the raw
    application/json body, or the form field `body` (or `msg`) holding it."""
    command = protocol.parse_command(await command_text(request))
    queue, right = protocol.target(command)
    await authorize(request, PRODUCER if right == "write" else CONSUMER, queue, right)
    return render(request, await protocol.execute(service_of(request), command))


# -- settings and statistics -----------------------------------------------------------------


async def policy(request: Request) -> Response:
    """broadcast (every streaming consumer gets each message) or roundrobin (exactly one does). POST sets it from
    the field `policy` (form or query)."""
    queue = request.path_params["queue"]
    service = service_of(request)
    if request.method == "POST":
        fields = await _fields(request)
        if "policy" not in fields:
            raise MissingField("missing field 'policy' (broadcast or roundrobin)")
        settings = await service.set_policy(queue, fields["policy"])
    else:
        settings = await service.settings(queue)
    reply: shapes.PolicyReply = {"queue": queue, "value": settings.policy}
    return render(request, reply)


async def control(request: Request) -> Response:
    """`status` start/stop and `max_deliveries` (0 = unlimited). POST `status=stop` pauses delivery to every
    consumer kind on every process (producers keep adding); `start` resumes. `max_deliveries=N` dead-letters a
    message after N deliveries without an ack."""
    queue = request.path_params["queue"]
    if request.method == "POST":
        return await set_control(request, await _fields(request))
    return _control_reply(request, queue, await service_of(request).settings(queue))


async def set_control(request: Request, fields: dict[str, str]) -> Response:
    """POST /control/{queue} with its fields (query and form) already read."""
    queue = request.path_params["queue"]
    status = fields.get("status")
    max_deliveries = integer(fields, "max_deliveries", -1) if "max_deliveries" in fields else None
    if status is None and max_deliveries is None:
        raise MissingField("missing field 'status' (start or stop) or 'max_deliveries'")
    if max_deliveries is not None and max_deliveries < 0:
        raise InvalidParameter("max_deliveries must be 0 (unlimited) or more")
    settings = await service_of(request).set_control(queue, status=status, max_deliveries=max_deliveries)
    return _control_reply(request, queue, settings)


def _control_reply(request: Request, queue: str, settings: QueueSettings) -> Response:
    reply: shapes.ControlReply = {"queue": queue, "status": settings.status, "max_deliveries": settings.max_deliveries}
    return render(request, reply)


async def stats_all(request: Request) -> Response:
    """Sizes, settings and counters of one page of queues (paged like GET /q/), and the backend nodes' states."""
    service = service_of(request)
    page, _ = await listings.visible_page(request)
    stats = await service.stats(page.queues)
    nodes = await ops.node_view(request, service.store)
    body: shapes.Stats = {"queues": [_stats(s) for s in stats], "count": len(stats), "next": page.next, "nodes": nodes}
    return render(request, body)


async def stats_queue(request: Request) -> Response:
    """Sizes (ready, delayed, leased, dead), consumers, settings and counters."""
    queue = request.path_params["queue"]
    (stats,) = await service_of(request).stats([queue])
    return render(request, _stats(stats))


def _stats(stats: QueueStats) -> shapes.QueueStats:
    return cast(shapes.QueueStats, stats.to_dict())  # the model's fields; counters are added as they appear
