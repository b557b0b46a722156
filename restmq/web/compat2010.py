"""`--compat 2010`: the reply shapes of the 2010 server on the routes where they differ from this one's.

Selected once, when the app is built (restmq/web/app.py): `routes(table)` swaps these endpoints in for the
default ones, behind the same access rules, and adds the 2010 redirects and their pages. The hot paths
(restmq/web/hot.py) are not touched: GET/POST /q/<queue> and the streams answer as in the default mode.

The JSON protocol and the WebSocket echo are in restmq/web/compat2010_protocol.py.

Bodies are byte for byte the 2010 ones (restmq/web/py2json.py writes the JSON as Python 2.7 did); statuses and
content types too, except that where cyclone said `text/html` for a body that is not HTML these say
`text/plain; charset=UTF-8` (a reflected value served as HTML is a cross-site scripting hole). Each reply is
listed in docs/compat.md beside the default mode's.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from restmq.config import Settings
from restmq.core.model import FlowStatus, Policy, QueueStats
from restmq.errors import MissingField
from restmq.web import compat2010_protocol, listings, rest, ui
from restmq.web.api import ApiRoute
from restmq.web.auth import CONSUMER, PRODUCER, Endpoint, authorize, guard
from restmq.web.compat2010_protocol import JSON, TEXT
from restmq.web.http import callback_of, media_type, read_form
from restmq.web.py2json import dumps

STATIC = Path(__file__).parent / "compat2010_static"
POLICY_IDS = {Policy.BROADCAST: 1, Policy.ROUNDROBIN: 2}  # 2010 stored and listed policies as numbers
STATUS_IDS = {FlowStatus.STOP: 0, FlowStatus.START: 1}


def settings(base: Settings) -> Settings:
    """2010 answered JSONP on every JSON route: the compat mode turns --jsonp on."""
    return replace(base, jsonp=True) if base.compat == "2010" else base


@functools.lru_cache(maxsize=8)
def backend_name(settings: Settings) -> str:
    """The "redis" field of 2010's control and stats replies (the repr of its connection pool). Host and port
    only: never a password."""
    url = settings.redis_cluster or (settings.redis[0] if settings.redis else "")
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else "unix socket"
    return f"<Redis Connection: {where} - {max(len(settings.redis), 1)} connection(s)>"


def _backend(request: Request) -> str:
    return backend_name(request.app.state.settings)


def _custom(request: Request, data: object) -> Response:
    """2010's CustomHandler: the text (a non-string as JSON) and \\r\\n, or `name(<text>);\\r\\n` with a callback."""
    text = data if isinstance(data, str) else dumps(data)
    callback = callback_of(request)
    return Response(f"{callback}({text});\r\n" if callback else f"{text}\r\n", media_type=TEXT)


def _wrapped(request: Request, text: str) -> str:
    """2010's control and stats handlers: `name(<json>)`, no semicolon, with a callback."""
    callback = callback_of(request)
    return f"{callback}({text})" if callback else text


async def _arguments(request: Request) -> dict[str, str]:
    """cyclone's get_argument: the query string, then the form body."""
    fields = dict(request.query_params)
    if media_type(request) in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields.update(await read_form(request, rest.service_of(request).limits.max_body))
    return fields


async def _stats(request: Request, queue: str) -> QueueStats:
    (stats,) = await rest.service_of(request).stats([queue])
    return stats


def _status_known(stats: QueueStats) -> bool:
    """Whether 2010 would have a status for the queue: its first add wrote `start`, as does a set. It answered
    `null` (and `""` in /stats/) for a queue never added to and never set."""
    used = stats.counters.get("added", 0) or stats.length or stats.delayed or stats.leased
    return bool(used) or stats.settings.status_set


# -- GET / and GET /queue: the 2010 redirects ---------------------------------------------------------


async def index_get(request: Request) -> Response:
    """Without `queue`: a redirect to /static/index.html. With it: the default pop."""
    if request.query_params.get("queue") is None:
        return RedirectResponse("/static/index.html", 302)
    return await rest.index_get(request)


async def queue_help(request: Request) -> Response:
    return RedirectResponse("/static/help.html", 302)


# -- /p/<queue> ---------------------------------------------------------------------------------------


async def policy_get(request: Request) -> Response:
    queue = request.path_params["queue"]
    stats = await _stats(request, queue)
    return _custom(
        request, {"queue": queue, "value": stats.settings.policy.value if stats.settings.policy_set else "unknown"}
    )


async def policy_set(request: Request) -> Response:
    """`OK`, or `null` for a policy that is neither broadcast nor roundrobin (2010's reply of a refused SET)."""
    queue = request.path_params["queue"]
    policy = (await _arguments(request)).get("policy")
    if policy is None:
        raise MissingField("missing field 'policy' (broadcast or roundrobin)")
    if policy not in POLICY_IDS:
        return _custom(request, "null")
    await rest.service_of(request).set_policy(queue, policy)
    return _custom(request, "OK")


# -- /control/<queue> -------------------------------------------------------------------------------


def _status(stats: QueueStats) -> dict[str, object]:
    return {"queue": stats.queue, "status": STATUS_IDS[stats.settings.status] if _status_known(stats) else None}


async def control_get(request: Request) -> Response:
    queue = request.path_params["queue"]
    reply = {"redis": _backend(request), "queue": queue, "status": _status(await _stats(request, queue))}
    return Response(f"{dumps(reply)}\r\n", media_type=JSON)


async def control_all(request: Request) -> Response:
    """GET /control/: every queue's status (2010 meant to; it listed one phantom queue named `queues`)."""
    page, _ = await listings.visible_page(request)
    stats = await rest.service_of(request).stats(page.queues)
    statuses = {s.queue: _status(s) for s in stats}
    reply = {"redis": _backend(request), "queues": statuses, "count": len(statuses)}
    return Response(f"{dumps(reply)}\r\n", media_type=JSON)


async def control_set(request: Request) -> Response:
    """`status=start|stop` -> {"stat": {"queue", "status": 1|0}}; any other value a 200 with its message.
    `max_deliveries` (not in 2010) answers as in the default mode."""
    fields = await _arguments(request)
    if "max_deliveries" in fields:
        return await rest.set_control(request, fields)
    queue, status = request.path_params["queue"], fields.get("status")
    stat: object = f"invalid status: {status}"
    if status in ("start", "stop"):
        settings = await rest.service_of(request).set_control(queue, status=status)
        stat = {"queue": queue, "status": STATUS_IDS[settings.status]}
    return Response(f"{_wrapped(request, dumps({'stat': stat}))}\r\n", media_type=TEXT)


# -- /stats/ ------------------------------------------------------------------------------------------


async def stats_all(request: Request) -> Response:
    """{"queues": {name: {"name", "len", "status", "policy"}}, "redis", "count"} for one page of queues (limit=,
    after= as in the default mode). Status 1 or "" (stopped), policy 1 (broadcast) or 2 (roundrobin)."""
    page, _ = await listings.visible_page(request)
    listed = {}
    for stats in await rest.service_of(request).stats(page.queues):
        # 2010 printed what its keys held, "" for a key never set (and for stop, whose 0 read as false)
        started = _status_known(stats) and stats.settings.status is FlowStatus.START
        policy = POLICY_IDS[stats.settings.policy] if stats.settings.policy_set else ""
        listed[stats.queue] = {
            "name": stats.queue,
            "len": stats.length,
            "status": 1 if started else "",
            "policy": policy,
        }
    reply = {"queues": listed, "redis": _backend(request), "count": len(listed)}
    return Response(_wrapped(request, dumps(reply)), media_type=JSON)


async def stats_queue(request: Request) -> Response:
    return await _queue_stats(request, request.path_params["queue"])


async def stats_stream(request: Request) -> Response:
    """The statistics event stream for an EventSource (Accept: text/event-stream); otherwise, as 2010 answered
    the path, the statistics of a queue named `stream`."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return await ui.stats_stream(request)
    await authorize(request, CONSUMER, "stream", "read")
    return await _queue_stats(request, "stream")


async def _queue_stats(request: Request, queue: str) -> Response:
    stats = await _stats(request, queue)
    reply = {"redis": _backend(request), "queue": queue, "len": stats.length}
    return Response(_wrapped(request, dumps(reply)), media_type=JSON)


# -- the table --------------------------------------------------------------------------------------------

# (method, path) -> the 2010 endpoint, behind the access rule of the default route it replaces
REPLACED: dict[tuple[str, str], Endpoint] = {
    ("GET", "/"): index_get,
    ("POST", "/queue"): compat2010_protocol.json_protocol,
    ("GET", "/p/{queue}"): guard(CONSUMER, "read", policy_get),
    ("POST", "/p/{queue}"): guard(PRODUCER, "admin", policy_set),
    ("GET", "/control/{queue}"): guard(CONSUMER, "read", control_get),
    ("POST", "/control/{queue}"): guard(PRODUCER, "admin", control_set),
    ("GET", "/stats"): stats_all,
    ("GET", "/stats/"): stats_all,
    ("GET", "/stats/{queue}"): guard(CONSUMER, "read", stats_queue),
    ("GET", "/stats/stream"): stats_stream,
}
ADDED: list[BaseRoute] = [
    Route("/queue", queue_help, methods=["GET"]),
    Route("/control/", control_all, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=STATIC), name="compat2010-static"),
]


def _in_place_of(route: ApiRoute, endpoint: Endpoint) -> ApiRoute:
    """`endpoint` on the route's path and methods, described as the default route: /openapi.json stays the
    default mode's."""

    @functools.wraps(route.endpoint)
    async def described(request: Request) -> Response:
        return await endpoint(request)

    return ApiRoute(route.path, described, sorted((route.methods or set()) - {"HEAD"}), route.api)


def routes(table: list[BaseRoute]) -> list[BaseRoute]:
    """The route table of `--compat 2010`, from the default one."""
    swapped: list[BaseRoute] = []
    for route in table:
        if isinstance(route, WebSocketRoute) and route.path == "/ws/{queue}":
            route = WebSocketRoute(route.path, compat2010_protocol.websocket)
        elif isinstance(route, ApiRoute):
            methods = (route.methods or set()) - {"HEAD"}
            endpoint = next((REPLACED[(m, route.path)] for m in methods if (m, route.path) in REPLACED), None)
            route = _in_place_of(route, endpoint) if endpoint is not None else route
        swapped.append(route)
    return swapped + ADDED
