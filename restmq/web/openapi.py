"""API descriptions: OpenAPI 3.1 for the HTTP routes (GET /openapi.json), AsyncAPI 2.6 for the streaming
channels (GET /asyncapi.json), and a self-contained HTML page rendering both (GET /docs).

The descriptions are written by hand as data, here. tests/integration/test_openapi.py compares the
OpenAPI paths and methods with the Starlette route table, so a route added without a description
(or a description left behind by a removed route) fails the suite.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import metadata
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

JSON = "application/json"
JSONP = "application/javascript"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
NDJSON = "application/x-ndjson"
HTML = "text/html"
TEXT = "text/plain"
SSE = "text/event-stream"

QUEUE_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,200}$"
KEY_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,200}:[1-9][0-9]{0,17}$"
CALLBACK_PATTERN = r"^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$"

Schema = dict[str, Any]


def _version() -> str:
    try:
        return metadata.version("restmq")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "0"


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Schema:
    return _ref("schemas", name)


def _param(name: str) -> Schema:
    return _ref("parameters", name)


# -- schemas ---------------------------------------------------------------------------------

_SECONDS = {"type": "number", "minimum": 0}

_NEXT = {
    "type": ["string", "null"],
    "description": "The `after` of the next page; null on the last page. A page may hold fewer queues than "
    "`limit` (even none) while `next` is set: follow it until it is null.",
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every error answer. `code` is stable and machine-readable (see docs/semantics.md).",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string", "description": "Human-readable text."},
            "code": {
                "type": "string",
                "examples": ["QUEUE_NAME_INVALID", "MESSAGE_NOT_FOUND", "LEASE_EXPIRED", "BACKEND_UNAVAILABLE"],
            },
        },
    },
    "Message": {
        "type": "object",
        "required": ["key", "value", "count"],
        "properties": {
            "key": {"type": "string", "pattern": KEY_PATTERN, "description": "`<queue>:<n>`"},
            "value": {"type": "string", "description": "The message text (a JSON document is its text)."},
            "count": {"type": "integer", "minimum": 0, "description": "This delivery's number."},
        },
    },
    "Messages": {"type": "array", "items": _schema("Message")},
    "Keys": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
    },
    "QueueList": {
        "type": "object",
        "required": ["queues", "count", "next"],
        "properties": {
            "queues": {"type": "array", "items": {"type": "string"}, "description": "This page's names, in order."},
            "count": {"type": "integer", "description": "How many names this page holds."},
            "next": _NEXT,
        },
    },
    "Purged": {
        "type": "object",
        "required": ["queue", "status"],
        "properties": {
            "queue": {"type": "string"},
            "status": {"type": "integer", "description": "How many messages were removed."},
        },
    },
    "Settled": {
        "type": "object",
        "required": ["queue", "key", "count", "status"],
        "properties": {
            "queue": {"type": "string"},
            "key": {"type": "string"},
            "count": {"type": "integer", "description": "The message's delivery count."},
            "status": {"type": "string", "enum": ["ack", "release", "extend"]},
        },
    },
    "Redriven": {
        "type": "object",
        "required": ["queue", "target", "moved"],
        "properties": {"queue": {"type": "string"}, "target": {"type": "string"}, "moved": {"type": "integer"}},
    },
    "Policy": {
        "type": "object",
        "required": ["queue", "value"],
        "properties": {"queue": {"type": "string"}, "value": {"type": "string", "enum": ["broadcast", "roundrobin"]}},
    },
    "Control": {
        "type": "object",
        "required": ["queue", "status", "max_deliveries"],
        "properties": {
            "queue": {"type": "string"},
            "status": {"type": "string", "enum": ["start", "stop"]},
            "max_deliveries": {"type": "integer", "minimum": 0, "description": "0 = unlimited."},
        },
    },
    "QueueStats": {
        "type": "object",
        "required": ["queue", "length", "delayed", "leased", "dead", "consumers", "status", "policy"],
        "properties": {
            "queue": {"type": "string"},
            "length": {"type": "integer", "description": "Messages ready to deliver now."},
            "delayed": {"type": "integer"},
            "leased": {"type": "integer"},
            "dead": {"type": "integer", "description": "Messages waiting in `<queue>:dead`."},
            "consumers": {"type": "integer", "description": "Streaming consumers on every server process."},
            "status": {"type": "string", "enum": ["start", "stop"]},
            "policy": {"type": "string", "enum": ["broadcast", "roundrobin"]},
            "max_deliveries": {"type": "integer"},
            "added": {"type": "integer"},
            "delivered": {"type": "integer"},
            "acked": {"type": "integer"},
            "redelivered": {"type": "integer"},
            "expired": {"type": "integer"},
            "dead_lettered": {"type": "integer"},
        },
        "additionalProperties": {"type": "integer"},
    },
    "Stats": {
        "type": "object",
        "required": ["queues", "count", "next"],
        "properties": {
            "queues": {"type": "array", "items": _schema("QueueStats"), "description": "This page's queues."},
            "count": {"type": "integer", "description": "How many queues this page holds."},
            "next": _NEXT,
            "nodes": {
                "description": 'Backend node states: {"redis://:***@host:6379/0": "up"} for admins (passwords '
                'redacted), {"node1": "up"} for other callers.'
            },
        },
    },
    "Command": {
        "type": "object",
        "description": "A JSON-protocol command (POST /queue, or a WebSocket frame). A field of another type than "
        "shown is a 400 PARAMETER_INVALID (on a WebSocket, an error frame); null means the field is absent.",
        "required": ["cmd", "queue"],
        "properties": {
            "cmd": {"type": "string", "enum": ["add", "get", "take", "del", "ack", "release", "extend"]},
            "queue": {"type": "string", "pattern": QUEUE_PATTERN},
            "value": {"description": "add: the message (a non-string is stored as its JSON text)."},
            "key": {"type": "string", "description": "del, ack, release, extend: the message key."},
            "count": {"type": "integer", "description": "ack, release, extend: the delivery's count."},
            "id": {"type": "string", "description": "add: idempotency key."},
            "priority": {"type": "integer", "minimum": 0, "maximum": 9},
            "delay": _SECONDS,
            "ttl": _SECONDS,
            "lease": _SECONDS,
        },
    },
    "Reply": {
        "type": "object",
        "description": (
            "add: {queue,value,key}; get (soft get: the message stays, its count rises) and take: "
            "{queue,value,key,count}; del: {queue,key,deleted}; ack/release/extend: {queue,key,count,status}. "
            'An empty queue answers {"error":"empty queue","code":"QUEUE_EMPTY"}, a stopped one '
            '{"error":"queue stopped","code":"QUEUE_STOPPED"}, with status 200.'
        ),
        "properties": {
            "queue": {"type": "string"},
            "key": {"type": "string"},
            "value": {},
            "count": {"type": "integer"},
            "deleted": {"type": "boolean"},
            "status": {"type": "string"},
            "error": {"type": "string"},
            "code": {"type": "string"},
        },
    },
    "AddForm": {
        "type": "object",
        "properties": {
            "value": {"type": "string", "description": "The message (or `msg`)."},
            "msg": {"type": "string"},
            "delay": {**_SECONDS, "description": "Seconds the message stays invisible."},
            "ttl": {**_SECONDS, "description": "Seconds it may wait before it is dropped."},
            "priority": {"type": "integer", "minimum": 0, "maximum": 9, "description": "Higher first."},
            "id": {"type": "string", "description": "Idempotency key (or the Idempotency-Key header)."},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Ready": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "error": {},
            "nodes": {"description": "As in /stats/: node addresses (passwords redacted) for admins only."},
        },
    },
}

# -- parameters ------------------------------------------------------------------------------

PARAMETERS: dict[str, Schema] = {
    "queue": {
        "name": "queue",
        "in": "path",
        "required": True,
        "description": "Queue name: 1-200 characters of A-Z a-z 0-9 _ - . : @",
        "schema": {"type": "string", "pattern": QUEUE_PATTERN},
    },
    "key": {
        "name": "key",
        "in": "path",
        "required": True,
        "description": "Message key `<queue>:<n>`.",
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    },
    "callback": {
        "name": "callback",
        "in": "query",
        "description": "JSONP, only on a server started with --jsonp: wrap the JSON answer as `callback(<json>);` "
        "(application/javascript). Without --jsonp any callback= is a 400 JSONP_DISABLED.",
        "schema": {"type": "string", "pattern": CALLBACK_PATTERN},
    },
    "pageLimit": {
        "name": "limit",
        "in": "query",
        "description": "Queues per page; the default, and the most used when more is asked, is the server's "
        "--max-page (1000 unless set).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "pageAfter": {
        "name": "after",
        "in": "query",
        "description": "Start after this name (the `next` of the previous page); queues are listed in name order.",
        "schema": {"type": "string", "pattern": QUEUE_PATTERN},
    },
    "wait": {
        "name": "wait",
        "in": "query",
        "description": "Long-poll: wait up to this many seconds for a message. A waiting long-poll holds a "
        "stream slot (503 TOO_MANY_STREAMS over --max-streams or --max-streams-per-client).",
        "schema": {"type": "number", "minimum": 0, "maximum": 60},
    },
    "count": {
        "name": "count",
        "in": "query",
        "description": "Return up to this many messages, as a JSON array.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "lease": {
        "name": "lease",
        "in": "query",
        "description": "Lease instead of removing: the message is hidden this many seconds until acked.",
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 43200},
    },
    "delay": {
        "name": "delay",
        "in": "query",
        "description": "Seconds before the message is visible.",
        "schema": {"type": "number", "minimum": 0, "maximum": 1209600},
    },
    "ttl": {
        "name": "ttl",
        "in": "query",
        "description": "Seconds the message may wait before it is dropped.",
        "schema": {"type": "number", "minimum": 0},
    },
    "priority": {
        "name": "priority",
        "in": "query",
        "description": "0-9, higher first.",
        "schema": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "id": {
        "name": "id",
        "in": "query",
        "description": "Idempotency key (same as the Idempotency-Key header).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    },
    "idempotency": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "A retried add with the same key within 5 minutes returns the first key(s) and adds nothing.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
    },
    "deliveryCount": {
        "name": "count",
        "in": "query",
        "description": "The delivery's count: 409 LEASE_STALE if the message was delivered again since.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "streamLease": {
        "name": "lease",
        "in": "query",
        "description": "Lease mode (roundrobin queues): messages stay leased this many seconds until acked.",
        "schema": {"type": "number", "minimum": 0, "maximum": 43200},
    },
}

# -- responses -------------------------------------------------------------------------------

_ERRORS = {
    "400": "Bad input (QUEUE_NAME_INVALID, PARAMETER_INVALID, FIELD_MISSING, JSON_INVALID, VALUE_INVALID, "
    "JSONP_DISABLED, ...).",
    "401": "Credentials are required (UNAUTHORIZED) or the token is not valid (TOKEN_INVALID).",
    "403": "The credentials do not give this right on this queue (FORBIDDEN), or the host is not allowed; "
    "or a page on another origin sent it (CROSS_SITE_REQUEST: allow the origin with --cors-origin).",
    "404": "MESSAGE_NOT_FOUND, or QUEUE_EMPTY on GET /?queue=.",
    "409": "LEASE_EXPIRED or LEASE_STALE.",
    "413": "PAYLOAD_TOO_LARGE: body, value or batch over its limit.",
    "503": "BACKEND_UNAVAILABLE (with Retry-After: 1): the backend cannot be reached, refuses for now or did not "
    "answer within --backend-timeout (an add may still have been stored: retry it with its Idempotency-Key); "
    "or TOO_MANY_STREAMS.",
}

RESPONSES: dict[str, Schema] = {
    f"E{status}": {"description": text, "content": {JSON: {"schema": _schema("Error")}}}
    for status, text in _ERRORS.items()
}
RESPONSES["Default"] = {"description": "Any other error, same body.", "content": {JSON: {"schema": _schema("Error")}}}


def _json(schema: Schema, description: str, jsonp: bool = True, headers: dict[str, Any] | None = None) -> Schema:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if jsonp:
        content[JSONP] = {"schema": {"type": "string", "description": "`callback(<json>);`"}}
    answer: Schema = {"description": description, "content": content}
    if headers:
        answer["headers"] = headers
    return answer


def _errors(*statuses: int) -> dict[str, Schema]:
    answers = {str(status): _ref("responses", f"E{status}") for status in statuses}
    answers["default"] = _ref("responses", "Default")
    return answers


_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when an Idempotency-Key retry added nothing.",
        "schema": {"type": "string"},
    }
}
_HTML = {"description": "An HTML page.", "content": {HTML: {"schema": {"type": "string"}}}}
_ADD_PARAMS = [_param("delay"), _param("ttl"), _param("priority"), _param("id"), _param("idempotency")]
_AUTH = (400, 401, 403)


def _op(
    op_id: str,
    summary: str,
    description: str,
    tag: str,
    responses: dict[str, Any],
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    public: bool = False,
) -> Schema:
    operation: Schema = {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if public:
        operation["security"] = []
    return operation


def _form(schema: Schema, required: list[str] | None = None) -> Schema:
    body = {**schema, "required": required} if required else schema
    return {FORM: {"schema": body}, MULTIPART: {"schema": body}}


def _list_queues(op_id: str) -> Schema:
    return _op(
        op_id,
        "List queues",
        "One page of the queues that hold messages (those the caller's token covers), in name order. HTML when "
        "the client prefers text/html.",
        "queues",
        {
            "200": {
                **_json(_schema("QueueList"), "The queue names."),
                "content": {
                    JSON: {"schema": _schema("QueueList")},
                    JSONP: {"schema": {"type": "string"}},
                    HTML: {"schema": {"type": "string"}},
                },
            },
            **_errors(*_AUTH),
        },
        [_param("pageLimit"), _param("pageAfter"), _param("callback")],
    )


def _stats_all(op_id: str) -> Schema:
    return _op(
        op_id,
        "Statistics of queues, a page at a time",
        "Sizes, settings and counters of one page of queues (paged like GET /q/), and the backend nodes' states.",
        "queues",
        {"200": _json(_schema("Stats"), "Statistics."), **_errors(*_AUTH)},
        [_param("pageLimit"), _param("pageAfter"), _param("callback")],
    )


PATHS: dict[str, dict[str, Any]] = {
    "/": {
        "get": _op(
            "indexGet",
            "Dashboard, or pop (original route)",
            "Without `queue`: the HTML dashboard. With `queue`: pop the oldest message like GET /q/{queue}, "
            "but an empty queue answers 404 QUEUE_EMPTY.",
            "original",
            {
                "200": {
                    "description": "The dashboard (no `queue`), or the message.",
                    "content": {
                        HTML: {"schema": {"type": "string"}},
                        JSON: {"schema": _schema("Message")},
                        JSONP: {"schema": {"type": "string"}},
                    },
                },
                **_errors(*_AUTH, 404, 503),
            },
            [
                {"name": "queue", "in": "query", "schema": {"type": "string", "pattern": QUEUE_PATTERN}},
                _param("wait"),
                _param("lease"),
                _param("callback"),
            ],
        ),
        "post": _op(
            "indexPost",
            "Add (original route)",
            "Add one message to the queue named by the form field `queue`. Answers the key, `<queue>:<n>\\r\\n`.",
            "original",
            {
                "200": {"description": "The new key.", "content": {TEXT: {"schema": {"type": "string"}}}},
                **_errors(*_AUTH, 413, 503),
            },
            body={
                "required": True,
                "content": _form(
                    {
                        **SCHEMAS["AddForm"],
                        "properties": {"queue": {"type": "string"}, **SCHEMAS["AddForm"]["properties"]},
                    },
                    ["queue"],
                ),
            },
        ),
    },
    "/queue": {
        "post": _op(
            "jsonProtocol",
            "JSON protocol",
            "Run one command: add, get (soft get), take, del, ack, release, extend. The command is the raw "
            "application/json body, or the form field `body` (or `msg`) holding it.",
            "original",
            {
                "200": _json(_schema("Reply"), "The command's reply (empty/stopped queues included)."),
                **_errors(*_AUTH, 404, 409, 413, 503),
            },
            [_param("callback")],
            {
                "required": True,
                "content": {
                    JSON: {"schema": _schema("Command")},
                    **_form({"type": "object", "properties": {"body": {"type": "string"}, "msg": {"type": "string"}}}),
                },
            },
        )
    },
    "/q": {"get": _list_queues("listQueuesBare")},
    "/q/": {"get": _list_queues("listQueues")},
    "/q/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "getMessage",
            "Pop, long-poll or lease messages",
            "The oldest message, removed as it is delivered. `lease=S` hides it for S seconds instead (ack with "
            "DELETE /q/{queue}/{key}). `wait=S` long-polls. `count=N` answers a JSON array of up to N. 204 when "
            "nothing is ready (with `X-RestMQ-Status: stop` when the queue is stopped).",
            "messages",
            {
                "200": _json(
                    {"oneOf": [_schema("Message"), _schema("Messages")]}, "A message, or an array with `count`."
                ),
                "204": {
                    "description": "Nothing ready.",
                    "headers": {
                        "X-RestMQ-Status": {
                            "description": "`stop` when the queue is stopped.",
                            "schema": {"type": "string"},
                        }
                    },
                },
                **_errors(*_AUTH, 503),
            },
            [_param("wait"), _param("count"), _param("lease"), _param("callback")],
        ),
        "post": _op(
            "addMessage",
            "Add a message, or a batch",
            "A form (`value=` or `msg=`) adds one message and answers its key as text, `<queue>:<n>\\r\\n`. A JSON "
            "array (application/json) or NDJSON (application/x-ndjson) adds a batch, all or nothing, answering "
            '{"keys": [...]}; a single JSON document is one message. Any other body is the message text.',
            "messages",
            {
                "200": {
                    "description": "The key (text) of one message, or the keys (JSON) of a batch.",
                    "headers": _REPLAYED,
                    "content": {
                        TEXT: {"schema": {"type": "string"}},
                        JSON: {"schema": _schema("Keys")},
                        JSONP: {"schema": {"type": "string"}},
                    },
                },
                **_errors(*_AUTH, 413, 503),
            },
            [*_ADD_PARAMS, _param("callback")],
            {
                "required": True,
                "content": {
                    **_form(SCHEMAS["AddForm"]),
                    JSON: {"schema": {"description": "An array (a batch) or one JSON document."}},
                    NDJSON: {"schema": {"type": "string"}},
                    TEXT: {"schema": {"type": "string"}},
                },
            },
        ),
        "delete": _op(
            "purgeQueue",
            "Purge a queue",
            "Remove every message (ready, delayed, leased) and close the queue's streams on every process. "
            "Settings and counters stay.",
            "queues",
            {"200": _json(_schema("Purged"), "How many messages were removed."), **_errors(*_AUTH, 503)},
            [_param("callback")],
        ),
    },
    "/q/{queue}/{key}": {
        "parameters": [_param("queue"), _param("key")],
        "delete": _op(
            "ackMessage",
            "Acknowledge a leased message",
            "The message is done and removed.",
            "leases",
            {"200": _json(_schema("Settled"), "Acknowledged."), **_errors(*_AUTH, 404, 409, 503)},
            [_param("deliveryCount"), _param("callback")],
        ),
    },
    "/q/{queue}/redrive": {
        "parameters": [_param("queue")],
        "post": _op(
            "redrive",
            "Redrive dead letters",
            "`queue` must be a dead-letter queue `<q>:dead`: its waiting messages move back to `<q>` as new messages. "
            "Needs admin on `<q>:dead` and write on `<q>`.",
            "queues",
            {"200": _json(_schema("Redriven"), "How many moved."), **_errors(*_AUTH, 503)},
            [_param("callback")],
        ),
    },
    "/q/{queue}/{key}/release": {
        "parameters": [_param("queue"), _param("key")],
        "post": _op(
            "releaseMessage",
            "Release a leased message",
            "Back to the head of its queue, or after `delay` seconds (query or form field).",
            "leases",
            {"200": _json(_schema("Settled"), "Released."), **_errors(*_AUTH, 404, 409, 503)},
            [_param("delay"), _param("deliveryCount"), _param("callback")],
            {
                "required": False,
                "content": _form(
                    {"type": "object", "properties": {"delay": _SECONDS, "count": {"type": "integer", "minimum": 0}}}
                ),
            },
        ),
    },
    "/q/{queue}/{key}/extend": {
        "parameters": [_param("queue"), _param("key")],
        "post": _op(
            "extendMessage",
            "Extend a lease",
            "Keep the message leased `lease` more seconds from now (query or form field; required).",
            "leases",
            {"200": _json(_schema("Settled"), "Extended."), **_errors(*_AUTH, 404, 409, 503)},
            [_param("lease"), _param("deliveryCount"), _param("callback")],
            {
                "required": False,
                "content": _form(
                    {"type": "object", "properties": {"lease": _SECONDS, "count": {"type": "integer", "minimum": 0}}}
                ),
            },
        ),
    },
    "/p/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "getPolicy",
            "Streaming policy",
            "broadcast (every streaming consumer gets each message) or roundrobin (exactly one does).",
            "settings",
            {"200": _json(_schema("Policy"), "The policy."), **_errors(*_AUTH, 503)},
            [_param("callback")],
        ),
        "post": _op(
            "setPolicy",
            "Set the streaming policy",
            "Field `policy` (form or query): broadcast or roundrobin.",
            "settings",
            {"200": _json(_schema("Policy"), "The new policy."), **_errors(*_AUTH, 503)},
            [
                {"name": "policy", "in": "query", "schema": {"type": "string", "enum": ["broadcast", "roundrobin"]}},
                _param("callback"),
            ],
            {
                "required": False,
                "content": _form(
                    {
                        "type": "object",
                        "properties": {"policy": {"type": "string", "enum": ["broadcast", "roundrobin"]}},
                    }
                ),
            },
        ),
    },
    "/control/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "getControl",
            "Flow control",
            "`status` start/stop and `max_deliveries` (0 = unlimited).",
            "settings",
            {"200": _json(_schema("Control"), "The flow control."), **_errors(*_AUTH, 503)},
            [_param("callback")],
        ),
        "post": _op(
            "setControl",
            "Set flow control",
            "`status=stop` pauses delivery to every consumer kind on every process (producers keep adding); "
            "`start` resumes. `max_deliveries=N` dead-letters a message after N deliveries without an ack.",
            "settings",
            {"200": _json(_schema("Control"), "The new flow control."), **_errors(*_AUTH, 503)},
            [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["start", "stop"]}},
                {
                    "name": "max_deliveries",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
                },
                _param("callback"),
            ],
            {
                "required": False,
                "content": _form(
                    {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string", "enum": ["start", "stop"]},
                            "max_deliveries": {"type": "integer", "minimum": 0, "maximum": 1000000},
                        },
                    }
                ),
            },
        ),
    },
    "/stats": {"get": _stats_all("statsBare")},
    "/stats/": {"get": _stats_all("stats")},
    "/stats/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "queueStats",
            "Statistics of a queue",
            "Sizes (ready, delayed, leased, dead), consumers, settings and counters.",
            "queues",
            {"200": _json(_schema("QueueStats"), "Statistics."), **_errors(*_AUTH, 503)},
            [_param("callback")],
        ),
    },
    "/j/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "queuePage",
            "Queue page",
            "HTML page with the queue's newest messages and counts.",
            "pages",
            {"200": _HTML, **_errors(*_AUTH, 503)},
            [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
        ),
    },
    "/c/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "comet",
            "COMET stream",
            "Kept open: one JSON object `{key,value}` per line (`\\r\\n`), or JSONP calls with `callback`. With "
            "`Accept: text/event-stream` it is the SSE stream of /sse/{queue}. See /asyncapi.json.",
            "streams",
            {
                "200": {
                    "description": "A stream that stays open.",
                    "content": {
                        NDJSON: {"schema": {"type": "string"}},
                        JSONP: {"schema": {"type": "string"}},
                        SSE: {"schema": {"type": "string"}},
                    },
                },
                **_errors(*_AUTH, 503),
            },
            [_param("streamLease"), _param("callback")],
        ),
    },
    "/sse/{queue}": {
        "parameters": [_param("queue")],
        "get": _op(
            "serverSentEvents",
            "Server-Sent Events stream",
            "Events `id: <key>` / `data: {key,value[,count]}`, heartbeats every 15 s, `retry:` (--sse-retry, 3000 ms "
            "by default). Reconnecting with `Last-Event-ID` (or `last_event_id=`) replays the broadcast history after "
            "that id, at most --max-replay-bytes of it (the newest); an `event: gap` comes first when history asked "
            "for is really missing: the history no longer reaches back (broadcast queues) or older history did not "
            "fit. See /asyncapi.json.",
            "streams",
            {
                "200": {
                    "description": "An event stream that stays open.",
                    "content": {SSE: {"schema": {"type": "string"}}},
                },
                **_errors(*_AUTH, 503),
            },
            [
                _param("streamLease"),
                {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            ],
        ),
    },
    "/health": {
        "get": _op(
            "health",
            "Liveness",
            "The process is up (the backend is not asked).",
            "operations",
            {"200": {"description": "Up.", "content": {JSON: {"schema": _schema("Health")}}}},
            public=True,
        )
    },
    "/ready": {
        "get": _op(
            "ready",
            "Readiness",
            "The backend answers.",
            "operations",
            {
                "200": {"description": "Ready.", "content": {JSON: {"schema": _schema("Ready")}}},
                "503": {"description": "The backend does not answer.", "content": {JSON: {"schema": _schema("Ready")}}},
            },
            public=True,
        )
    },
    "/metrics": {
        "get": _op(
            "metrics",
            "Prometheus metrics",
            "Process, request and queue metrics in the Prometheus text format: per-queue series (`queue` label) "
            "for the first --metrics-queues queues by name (1000 unless set), and `restmq_queues` plus "
            "`restmq_queues_*` totals over every queue the caller may see.",
            "operations",
            {
                "200": {"description": "Metrics.", "content": {TEXT: {"schema": {"type": "string"}}}},
                **_errors(401, 403),
            },
        )
    },
    "/openapi.json": {
        "get": _op(
            "openapi",
            "This description",
            "OpenAPI 3.1 description of the HTTP routes.",
            "operations",
            {"200": {"description": "OpenAPI document.", "content": {JSON: {"schema": {"type": "object"}}}}},
            public=True,
        )
    },
    "/asyncapi.json": {
        "get": _op(
            "asyncapi",
            "Streaming channels",
            "AsyncAPI 2.6 description of the COMET, SSE and WebSocket channels.",
            "operations",
            {"200": {"description": "AsyncAPI document.", "content": {JSON: {"schema": {"type": "object"}}}}},
            public=True,
        )
    },
    "/docs": {
        "get": _op(
            "docs",
            "API reference page",
            "This API as a human-readable HTML page.",
            "operations",
            {"200": _HTML},
            public=True,
        )
    },
}

TAGS = [
    {"name": "messages", "description": "Add and read messages."},
    {"name": "leases", "description": "Settle leased messages: ack, release, extend."},
    {"name": "queues", "description": "List, purge, statistics, dead letters."},
    {"name": "settings", "description": "Streaming policy and flow control."},
    {"name": "streams", "description": "COMET and SSE streams (WebSocket: see /asyncapi.json)."},
    {"name": "original", "description": "The original RestMQ index routes and JSON protocol."},
    {"name": "pages", "description": "HTML pages."},
    {"name": "operations", "description": "Health, readiness, metrics and these descriptions."},
]


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RestMQ",
            "version": _version(),
            "summary": "A message queue that speaks plain HTTP.",
            "description": (
                "Queues are created by their first message. Errors are JSON `{error, code}` with a stable code. "
                "Any JSON answer becomes JSONP with `callback=`. Credentials (when the server has tokens or an "
                "acl.conf): `Authorization: Bearer <token>`, HTTP Basic, or `?token=`. Streaming channels "
                "(COMET, SSE, WebSocket) are described in /asyncapi.json."
            ),
            "license": {"name": "BSD-3-Clause", "identifier": "BSD-3-Clause"},
        },
        "tags": TAGS,
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from `restmq token create`."},
                "basic": {"type": "http", "scheme": "basic", "description": "acl.conf username and password."},
                "token": {"type": "apiKey", "in": "query", "name": "token", "description": "For EventSource."},
            },
        },
        "security": [{}, {"bearer": []}, {"basic": []}, {"token": []}],
    }


# -- AsyncAPI --------------------------------------------------------------------------------

_STREAM_MESSAGE: Schema = {
    "type": "object",
    "required": ["key", "value"],
    "properties": {
        "key": {"type": "string", "description": "`<queue>:<n>`"},
        "value": {"type": "string"},
        "count": {"type": "integer", "description": "Lease mode only: this delivery's number (ack with it)."},
    },
}


@functools.cache
def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 2.6 document of the streaming channels."""
    queue_param = {
        "queue": {
            "description": "Queue name: 1-200 characters of A-Z a-z 0-9 _ - . : @",
            "schema": {"type": "string", "pattern": QUEUE_PATTERN},
        }
    }
    lease_query = {
        "type": "object",
        "properties": {
            "lease": {
                "type": "number",
                "minimum": 0,
                "maximum": 43200,
                "description": "Lease mode on a roundrobin queue: messages stay leased until acked.",
            },
            "token": {"type": "string", "description": "Bearer token, where headers cannot be set."},
        },
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "RestMQ streams",
            "version": _version(),
            "description": (
                "Streaming delivery. On a `broadcast` queue (the default) each message taken for streaming goes "
                "to every streaming consumer on every server process; on a `roundrobin` queue to exactly one, "
                "rotating. With `?lease=S` (roundrobin) each message stays leased until the client acks it "
                "(DELETE /q/<queue>/<key>, or a WebSocket `ack` frame); unacked messages go back to the queue "
                "when the connection closes. A slow consumer (1,000 messages behind) is disconnected."
            ),
        },
        "defaultContentType": JSON,
        "servers": {
            "http": {
                "url": "{host}",
                "protocol": "http",
                "description": "COMET and SSE.",
                "variables": {"host": {"default": "127.0.0.1:8888"}},
            },
            "ws": {
                "url": "{host}",
                "protocol": "ws",
                "description": "WebSocket.",
                "variables": {"host": {"default": "127.0.0.1:8888"}},
            },
        },
        "channels": {
            "/c/{queue}": {
                "description": "COMET: GET, kept open; one JSON object per line (`\\r\\n`). With `callback=` each "
                "line is a JSONP call; with `Accept: text/event-stream` the channel speaks SSE as /sse/{queue}.",
                "servers": ["http"],
                "parameters": queue_param,
                "subscribe": {
                    "operationId": "comet",
                    "summary": "Receive the queue's messages as lines.",
                    "bindings": {"http": {"type": "request", "method": "GET", "query": lease_query}},
                    "message": {"$ref": "#/components/messages/StreamMessage"},
                },
            },
            "/sse/{queue}": {
                "description": "Server-Sent Events: each message is an event `id: <key>` / `data: <json>`; `retry:` "
                "first (--sse-retry, 3000 ms by default), a `: heartbeat` comment every 15 s. Reconnect with "
                "`Last-Event-ID: <key>` (or `?last_event_id=`) to replay the broadcast history after it (the newest "
                "1,000 per queue, kept 5 minutes, at most --max-replay-bytes of it: the newest); an `event: gap` "
                "comes first when history asked for is really missing: the history no longer reaches back "
                "(broadcast queues) or older history did not fit.",
                "servers": ["http"],
                "parameters": queue_param,
                "subscribe": {
                    "operationId": "serverSentEvents",
                    "summary": "Receive the queue's messages as events.",
                    "bindings": {"http": {"type": "request", "method": "GET", "query": lease_query}},
                    "message": {
                        "oneOf": [
                            {"$ref": "#/components/messages/StreamMessage"},
                            {"$ref": "#/components/messages/Gap"},
                        ]
                    },
                },
            },
            "/ws/{queue}": {
                "description": "WebSocket (RFC 6455): one JSON text frame per message. The client may send "
                "JSON-protocol commands as frames (the queue defaults to the channel's) and gets a JSON reply "
                "frame each; a malformed frame gets an error frame. An invalid queue name or lease closes with "
                "code 1008; purging the queue closes with 1000. acl.conf's cookie `auth=user:pass` is accepted.",
                "servers": ["ws"],
                "parameters": queue_param,
                "bindings": {"ws": {"method": "GET", "query": lease_query}},
                "subscribe": {
                    "operationId": "websocketReceive",
                    "summary": "Receive messages, and replies to the client's commands.",
                    "message": {
                        "oneOf": [
                            {"$ref": "#/components/messages/StreamMessage"},
                            {"$ref": "#/components/messages/Reply"},
                        ]
                    },
                },
                "publish": {
                    "operationId": "websocketSend",
                    "summary": "Send JSON-protocol commands: add, get, take, del, ack, release, extend.",
                    "message": {"$ref": "#/components/messages/Command"},
                },
            },
        },
        "components": {
            "messages": {
                "StreamMessage": {
                    "name": "message",
                    "title": "A queue message",
                    "contentType": JSON,
                    "payload": _STREAM_MESSAGE,
                    "examples": [{"payload": {"key": "news:1", "value": "hello"}}],
                },
                "Gap": {
                    "name": "gap",
                    "title": "SSE `event: gap`",
                    "summary": "The replay does not reach back to Last-Event-ID (the history is shorter, or older "
                    "history did not fit in --max-replay-bytes): messages may have been missed.",
                    "contentType": JSON,
                    "payload": {
                        "type": "object",
                        "properties": {
                            "last_event_id": {"type": "string"},
                            "oldest": {"type": ["string", "null"], "description": "The oldest key replayed."},
                        },
                    },
                },
                "Command": {
                    "name": "command",
                    "title": "A JSON-protocol command",
                    "contentType": JSON,
                    "payload": SCHEMAS["Command"],
                    "examples": [{"payload": {"cmd": "ack", "queue": "jobs", "key": "jobs:1", "count": 1}}],
                },
                "Reply": {
                    "name": "reply",
                    "title": "The reply to a command, or an error frame",
                    "contentType": JSON,
                    "payload": SCHEMAS["Reply"],
                },
            }
        },
    }


# -- handlers --------------------------------------------------------------------------------


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json"""
    return Response(orjson.dumps(openapi()), media_type=JSON)


async def asyncapi_json(request: Request) -> Response:
    """GET /asyncapi.json"""
    return Response(orjson.dumps(asyncapi()), media_type=JSON)


async def docs_page(request: Request) -> Response:
    """GET /docs: the API reference as one self-contained HTML page (no scripts, no CDN)."""
    return HTMLResponse(render_docs())


# -- the HTML page ---------------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")
_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:2px solid #d9dde6;padding-bottom:4px}
.op{background:#fff;border:1px solid #d9dde6;border-radius:6px;margin:14px 0;padding:12px 16px}
.op h3{margin:0;font-size:16px;font-family:ui-monospace,monospace}
.m{display:inline-block;min-width:64px;text-align:center;border-radius:4px;color:#fff;font-size:13px;padding:1px 6px;
margin-right:8px}
.get{background:#2f6fde}.post{background:#1f9d55}.delete{background:#d64545}.put,.patch{background:#b7791f}
.ch{background:#6b46c1}
.summary{color:#555;margin-left:8px;font-family:system-ui,sans-serif;font-weight:400}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th,td{text-align:left;border-bottom:1px solid #eceef2;padding:4px 8px;vertical-align:top}
code{font-family:ui-monospace,monospace;background:#eef0f4;padding:0 3px;border-radius:3px}
nav a{margin-right:12px}small{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _md(text: object) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _type_of(document: dict[str, Any], schema: Any) -> str:
    if isinstance(schema, dict) and "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    schema = _resolve(document, schema) or {}
    if "oneOf" in schema:
        return " | ".join(_type_of(document, option) for option in schema["oneOf"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "exclusiveMinimum", "maximum") if k in schema]
    return f"{kind}" + (f" ({', '.join(bounds)})" if bounds else "")


def _parameters_table(document: dict[str, Any], parameters: list[Any]) -> str:
    if not parameters:
        return ""
    rows = []
    for raw in parameters:
        param = _resolve(document, raw)
        required = "required" if param.get("required") else ""
        rows.append(
            f"<tr><td><code>{_e(param['name'])}</code></td><td>{_e(param['in'])}</td>"
            f"<td>{_e(_type_of(document, param.get('schema')))}</td><td>{required}</td>"
            f"<td>{_md(param.get('description', ''))}</td></tr>"
        )
    return (
        "<table><tr><th>parameter</th><th>in</th><th>type</th><th></th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _responses_table(document: dict[str, Any], responses: dict[str, Any]) -> str:
    rows = []
    for status, raw in responses.items():
        answer = _resolve(document, raw)
        kinds = ", ".join(
            f"{media} {_type_of(document, spec.get('schema'))}" for media, spec in answer.get("content", {}).items()
        )
        rows.append(
            f"<tr><td><b>{_e(status)}</b></td><td>{_md(answer.get('description', ''))}</td><td>{_e(kinds)}</td></tr>"
        )
    return "<table><tr><th>status</th><th>meaning</th><th>body</th></tr>" + "".join(rows) + "</table>"


def _operation(document: dict[str, Any], path: str, method: str, op: dict[str, Any], shared: list[Any]) -> str:
    body = op.get("requestBody")
    body_html = ""
    if body:
        kinds = ", ".join(
            f"{media} {_type_of(document, spec.get('schema'))}" for media, spec in body.get("content", {}).items()
        )
        body_html = f"<p><small>body:</small> {_e(kinds)}</p>"
    return (
        f'<div class="op" id="{_e(op["operationId"])}"><h3><span class="m {method}">{method.upper()}</span>'
        f'{_e(path)}<span class="summary">{_e(op.get("summary", ""))}</span></h3>'
        f"<p>{_md(op.get('description', ''))}</p>"
        f"{_parameters_table(document, [*shared, *op.get('parameters', [])])}{body_html}"
        f"{_responses_table(document, op['responses'])}</div>"
    )


def _channels(spec: dict[str, Any]) -> str:
    parts = []
    for name, channel in spec["channels"].items():
        directions = []
        for direction, verb in (("subscribe", "server → client"), ("publish", "client → server")):
            if direction in channel:
                directions.append(f"<p><small>{verb}:</small> {_e(channel[direction].get('summary', ''))}</p>")
        parts.append(
            f'<div class="op"><h3><span class="m ch">{_e(channel["servers"][0].upper())}</span>{_e(name)}</h3>'
            f"<p>{_md(channel['description'])}</p>{''.join(directions)}</div>"
        )
    return "".join(parts)


@functools.cache
def render_docs() -> str:
    document = openapi()
    by_tag: dict[str, list[str]] = {tag["name"]: [] for tag in TAGS}
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault(op["tags"][0], []).append(_operation(document, path, method, op, shared))
    sections = []
    for tag in TAGS:
        sections.append(
            f'<h2 id="tag-{_e(tag["name"])}">{_e(tag["name"])}</h2><p>{_md(tag["description"])}</p>'
            + "".join(by_tag.get(tag["name"], []))
        )
    nav = " ".join(f'<a href="#tag-{_e(t["name"])}">{_e(t["name"])}</a>' for t in TAGS)
    info = document["info"]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>RestMQ API</title><style>{_CSS}</style></head><body><main>"
        f"<h1>RestMQ API <small>{_e(info['version'])}</small></h1><p>{_md(info['description'])}</p>"
        f'<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1), '
        f'<a href="/asyncapi.json">/asyncapi.json</a> (AsyncAPI 2.6).</p>'
        f'<nav>{nav} <a href="#channels">channels</a></nav>'
        + "".join(sections)
        + '<h2 id="channels">streaming channels</h2>'
        + _channels(asyncapi())
        + "</main></body></html>"
    )
