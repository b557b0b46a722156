"""API descriptions, derived: OpenAPI 3.1 for the HTTP routes (GET /openapi.json) from the route table's Api
entries (restmq/web/routes.py) and the models of restmq/web/shapes.py; AsyncAPI 2.6 for the streaming channels
(GET /asyncapi.json). Bounds are the running server's Limits. The HTML page is restmq/web/docs_page.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, cast

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from restmq.config import Limits, Settings
from restmq.core.names import QUEUE_NAME_RULE
from restmq.web import shapes, streams
from restmq.web.api import ERRORS, FORM, JSON, JSONP, MULTIPART, Api, ApiRoute, Out

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
TAGS = [
    {"name": "messages", "description": "Add and read messages."},
    {"name": "leases", "description": "Settle leased messages: ack, release, extend."},
    {"name": "queues", "description": "List, purge, statistics, dead letters."},
    {"name": "settings", "description": "Streaming policy and flow control."},
    {"name": "streams", "description": "COMET and SSE streams (WebSocket: see /asyncapi.json)."},
    {"name": "original", "description": "The original RestMQ index routes and JSON protocol."},
    {"name": "ingest", "description": "Input adapters: collectd's write_http plugin."},
    {"name": "pages", "description": "HTML pages."},
    {"name": "operations", "description": "Health, readiness, metrics and these descriptions."},
    {"name": "push", "description": "Push subscriptions: a queue's messages POSTed to a webhook (--push-allow)."},
    {"name": "schedules", "description": "Messages published on a cron or interval schedule (docs/schedules.md)."},
]
ERROR_TEXTS = {
    400: "Bad input (QUEUE_NAME_INVALID, PARAMETER_INVALID, FIELD_MISSING, JSON_INVALID, VALUE_INVALID, "
    "JSONP_DISABLED, ...).",
    401: "Credentials are required (UNAUTHORIZED) or the token is not valid (TOKEN_INVALID).",
    403: "The credentials do not give this right on this queue (FORBIDDEN), or the host is not allowed; "
    "or a page on another origin sent it (CROSS_SITE_REQUEST: allow the origin with --cors-origin).",
    404: "MESSAGE_NOT_FOUND, or QUEUE_EMPTY on GET /?queue=.",
    409: "LEASE_EXPIRED or LEASE_STALE.",
    413: "PAYLOAD_TOO_LARGE: body, value or batch over its limit.",
    503: "BACKEND_UNAVAILABLE (with Retry-After: 1): the backend cannot be reached, refuses for now or did not "
    "answer within --backend-timeout (an add may still have been stored: retry it with its Idempotency-Key); "
    "or TOO_MANY_STREAMS.",
}
INFO = (
    "Queues are created by their first message. Errors are JSON `{error, code}` with a stable code. Any JSON "
    "answer becomes JSONP with `callback=`. Credentials (when the server has tokens or an acl.conf): "
    "`Authorization: Bearer <token>`, HTTP Basic, or `?token=`. Streaming channels (COMET, SSE, WebSocket) are "
    "described in /asyncapi.json."
)
STREAMING = (
    "Streaming delivery. On a `broadcast` queue (the default) each message taken for streaming goes to every "
    "streaming consumer on every server process; on a `roundrobin` queue to exactly one, rotating. With `?lease=S` "
    "(roundrobin) each message stays leased until the client acks it (DELETE /q/<queue>/<key>, or a WebSocket `ack` "
    "frame); unacked messages go back to the queue when the connection closes. A slow consumer (1,000 messages "
    "behind) is disconnected."
)
SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A token from `restmq token create`."},
    "basic": {"type": "http", "scheme": "basic", "description": "acl.conf username and password."},
    "token": {"type": "apiKey", "in": "query", "name": "token", "description": "For EventSource."},
}


def _version() -> str:
    try:
        return metadata.version("restmq")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "0"


def _text(obj: Any) -> str:
    """A docstring as one line of text: the description of an operation, a channel or a model."""
    return " ".join((getattr(obj, "__doc__", None) or "").split())


def _with_limits(node: Any, limits: Limits) -> Any:
    """The schema with each named bound (shapes.LIMIT) replaced by the running server's value."""
    if isinstance(node, list):
        return [_with_limits(item, limits) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_limits(value, limits) for key, value in node.items() if key != shapes.LIMIT}
    if shapes.LIMIT in node:
        bound = getattr(limits, node[shapes.LIMIT])
        out["maximum"] = int(bound) if float(bound).is_integer() else bound
    return out


class _Models:
    """JSON Schema of every model the described routes name, as components with $refs to them."""

    def __init__(self, models: Iterable[Any]) -> None:
        self.types = list(dict.fromkeys(models))
        refs, self.components = msgspec.json.schema_components(self.types, ref_template=REF)
        self.refs = dict(zip(self.types, refs, strict=True))
        for name, component in self.components.items():  # fields in their declared order, not sorted
            order = list(getattr(getattr(shapes, name, None), "__annotations__", ()))
            if order and "properties" in component:
                component["properties"] = {key: component["properties"][key] for key in order}
                component["required"] = [key for key in order if key in component["required"]]

    def properties(self, model: type, where: str, only: Iterable[str] | None = None) -> list[Schema]:
        """A TypedDict's fields as OpenAPI parameters (the description moves up from the schema)."""
        component = self.components[model.__name__]
        found = []
        for name, raw in component["properties"].items():
            if only is not None and name not in only:
                continue
            schema = dict(raw)
            param = {"name": name, "in": where, "description": schema.pop("description", ""), "schema": schema}
            if where == "path" or name in component.get("required", ()):
                param["required"] = True
            found.append(param)
        return sorted(found, key=lambda param: param["name"] == "callback")  # the JSONP wrapper last


def _answer(models: _Models, given: Any, jsonp: bool) -> Schema:
    out = given if isinstance(given, Out) else Out(_text(given), given)
    content: Schema = {}
    if out.json is not None:
        content[JSON] = {"schema": models.refs[out.json]}
        if jsonp:
            content[JSONP] = {"schema": {"type": "string", "description": "`callback(<json>);`"}}
    content |= {media: {"schema": {"type": "string"}} for media in out.media}
    answer: Schema = {"description": out.description}
    if content:
        answer["content"] = content
    if out.headers:
        answer["headers"] = {name: {"description": t, "schema": {"type": "string"}} for name, t in out.headers.items()}
    return answer


def _operation(models: _Models, route: ApiRoute) -> Schema:
    api = route.api
    handler = getattr(route.endpoint, "__wrapped__", route.endpoint)
    name = handler.__name__.split("_")
    parameters = models.properties(shapes.PathParams, "path", route.param_convertors)
    parameters += models.properties(api.query, "query") if api.query else []
    parameters += models.properties(api.headers, "header") if api.headers else []
    jsonp = any(p["name"] == "callback" for p in parameters)
    responses = {str(status): _answer(models, given, jsonp) for status, given in api.gives.items()}
    errors = api.errors if api.errors is not None else () if api.public else ERRORS
    responses |= {str(status): {"$ref": f"#/components/responses/E{status}"} for status in errors}
    responses = dict(sorted(responses.items()))
    operation: Schema = {
        "operationId": api.op_id or name[0] + "".join(part.title() for part in name[1:]),
        "summary": api.summary,
        "description": api.description or _text(handler),
        "tags": [api.tag],
        "parameters": parameters,
        "responses": responses | ({"default": {"$ref": "#/components/responses/Default"}} if errors else {}),
    }
    body = {media: {"schema": models.refs[model]} for media, model in api.body.items()}
    if api.form is not None:
        body |= {FORM: {"schema": models.refs[api.form]}, MULTIPART: {"schema": models.refs[api.form]}}
    if body:
        operation["requestBody"] = {"required": api.body_required, "content": body}
    if api.public:
        operation["security"] = []
    return operation


def _named(api: Api) -> list[Any]:
    answers = [g.json if isinstance(g, Out) else g for g in api.gives.values()]
    return [m for m in (*answers, api.query, api.headers, api.form, *api.body.values()) if m is not None]


def openapi(routes: Sequence[BaseRoute], settings: Settings) -> Schema:
    """The OpenAPI 3.1 document of the described routes."""
    described = [route for route in routes if isinstance(route, ApiRoute)]
    models = _Models([shapes.Error, shapes.PathParams, *(m for r in described for m in _named(r.api))])
    paths: dict[str, Schema] = {}
    for route in described:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(models, route)
    for route in described:  # parameters are inlined in the operations
        for model in (route.api.query, route.api.headers, shapes.PathParams):
            models.components.pop(getattr(model, "__name__", ""), None)
    error = {"content": {JSON: {"schema": models.refs[shapes.Error]}}}
    responses = {f"E{status}": {"description": text, **error} for status, text in ERROR_TEXTS.items()}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "RestMQ",
            "version": _version(),
            "summary": "A message queue that speaks plain HTTP.",
            "description": INFO,
            "license": {"name": "BSD-3-Clause", "identifier": "BSD-3-Clause"},
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": models.components,
            "responses": responses | {"Default": {"description": "Any other error, same body.", **error}},
            "securitySchemes": SECURITY,
        },
        "security": [{}, *({name: []} for name in SECURITY)],
    }
    return dict(_with_limits(document, settings.limits))


# channel: (handler, server, operationId, summary, messages received)
CHANNELS = {
    "/c/{queue}": (streams.comet, "http", "comet", "Receive the queue's messages as lines.", ["StreamMessage"]),
    "/sse/{queue}": (streams.server_sent_events, "http", "serverSentEvents", "Receive the queue's messages as events.",
                     ["StreamMessage", "Gap"]),
    "/ws/{queue}": (streams.websocket, "ws", "websocketReceive", "Receive messages, and replies to the client's "
                    "commands.", ["StreamMessage", "Reply"]),
}  # fmt: skip
# message: (name, title, payload, example)
MESSAGES = {
    "StreamMessage": ("message", "A queue message", shapes.StreamMessage, {"key": "news:1", "value": "hello"}),
    "Gap": ("gap", "SSE `event: gap`", shapes.Gap, None),
    "Command": ("command", "A JSON-protocol command", shapes.Command, {"cmd": "ack", "queue": "jobs", "key": "jobs:1",
                                                                        "count": 1}),
    "Reply": ("reply", "The reply to a command, or an error frame", shapes.Reply, None),
}  # fmt: skip


def _channel(handler: Any, server: str, operation: str, summary: str, messages: list[str]) -> Schema:
    refs = [{"$ref": f"#/components/messages/{name}"} for name in messages]
    binding: Schema = {"method": "GET", "query": {"$ref": REF.format(name="StreamQuery")}}
    channel: Schema = {
        "description": _text(handler),
        "servers": [server],
        "parameters": {"queue": {"description": QUEUE_NAME_RULE, "schema": {"$ref": REF.format(name="Queue")}}},
        "subscribe": {"operationId": operation, "summary": summary, "message": {"oneOf": refs}},
    }
    if server == "ws":  # WebSocket bindings belong to the channel, HTTP ones to the operation
        channel["bindings"] = {"ws": binding}
        channel["publish"] = {
            "operationId": "websocketSend",
            "summary": "Send JSON-protocol commands: add, get, take, del, ack, release, extend.",
            "message": {"$ref": "#/components/messages/Command"},
        }
    else:
        channel["subscribe"]["bindings"] = {"http": {"type": "request", **binding}}
    return channel


def _message(name: str, title: str, payload: type, example: Schema | None) -> Schema:
    found: Schema = {"name": name, "title": title, "summary": _text(payload), "contentType": JSON}
    found["payload"] = {"$ref": REF.format(name=payload.__name__)}
    return found | ({"examples": [{"payload": example}]} if example else {})


def asyncapi(settings: Settings) -> Schema:
    """The AsyncAPI 2.6 document of the streaming channels."""
    payloads = [payload for _, _, payload, _ in MESSAGES.values()]
    _, schemas = msgspec.json.schema_components([*payloads, shapes.StreamQuery], ref_template=REF)
    messages = {key: _message(*described) for key, described in MESSAGES.items()}
    host = {"host": {"default": f"{settings.host}:{settings.port}"}}
    document = {
        "asyncapi": "2.6.0",
        "info": {"title": "RestMQ streams", "version": _version(), "description": STREAMING},
        "defaultContentType": JSON,
        "servers": {
            "http": {"url": "{host}", "protocol": "http", "description": "COMET and SSE.", "variables": host},
            "ws": {"url": "{host}", "protocol": "ws", "description": "WebSocket.", "variables": host},
        },
        "channels": {path: _channel(*described) for path, described in CHANNELS.items()},
        "components": {"schemas": schemas | {"Queue": msgspec.json.schema(shapes.QueueName)}, "messages": messages},
    }
    return dict(_with_limits(document, settings.limits))


def _cached(request: Request, name: str, build: Any) -> bytes:
    state = request.app.state
    if not hasattr(state, name):  # built once per application, from its routes and the settings it runs with
        setattr(state, name, orjson.dumps(build(request)))
    return cast(bytes, getattr(state, name))


async def openapi_json(request: Request) -> Response:
    """OpenAPI 3.1 description of the HTTP routes."""
    body = _cached(request, "openapi_json", lambda r: openapi(r.app.routes, r.app.state.settings))
    return Response(body, media_type=JSON)


async def asyncapi_json(request: Request) -> Response:
    """AsyncAPI 2.6 description of the COMET, SSE and WebSocket channels."""
    return Response(_cached(request, "asyncapi_json", lambda r: asyncapi(r.app.state.settings)), media_type=JSON)
