"""The browser dashboard: its pages (GET /, /ui, /j/<queue>), its static files (/ui/static) and the two
endpoints only it needs, GET /stats/stream (statistics as Server-Sent Events) and GET /peek/<queue>.

The pages are plain HTML files in dashboard/ whose placeholders (`<!--rows-->`, ...) are filled with
the caller's data for the first paint, so they work without JavaScript; dashboard/static/*.js then
keeps them live through the same JSON API any client uses. See docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape
from pathlib import Path
from typing import cast
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from restmq.core.model import Message, QueueStats
from restmq.core.names import check_queue_name
from restmq.core.service import QueueService
from restmq.errors import InvalidParameter, RestMQError, Unauthorized
from restmq.web import listings, ops, shapes
from restmq.web.auth import CONSUMER, authorize
from restmq.web.browser import CROSS_SITE
from restmq.web.errors import error_response
from restmq.web.http import integer, prefers_html, render
from restmq.web.limits import StreamSlots, client_of
from restmq.web.shutdown import hooks_of
from restmq.web.snapshots import Snapshots, shared

DASHBOARD = Path(__file__).parent / "dashboard"
static_files = StaticFiles(directory=DASHBOARD / "static")
STATS_INTERVAL = 1.0  # seconds between two /stats/stream events
NO_STORE = {"Cache-Control": "no-store"}


@functools.cache
def _template(name: str) -> str:
    return (DASHBOARD / name).read_text(encoding="utf-8")


def _fill(name: str, **parts: str) -> str:
    page = _template(name)
    for placeholder, html in parts.items():
        page = page.replace(f"<!--{placeholder}-->", html)
    return page


def _service(request: Request) -> QueueService:
    service: QueueService = request.app.state.service
    return service


def _href(queue: str) -> str:
    return "/j/" + quote(queue, safe=":@")


def _shell(request: Request, page: str, exc: Unauthorized, **parts: str) -> Response:
    """The page without data, for a browser that has not sent credentials yet: its script asks for
    a token and loads the data itself. Any other client gets the usual JSON error."""
    if not prefers_html(request):
        raise exc
    notice = f"{escape(exc.message)}. Paste a token above; it is kept in this browser only."
    html = _fill(page, notice=notice, **parts)
    return HTMLResponse(html, 401, {"WWW-Authenticate": _challenge(request), **NO_STORE})


def _challenge(request: Request) -> str:
    """Basic only when acl.conf has credentials for consumers: browsers answer a Basic challenge, even
    to a script's request, with a password box."""
    rule = request.app.state.access.acl.get(CONSUMER)
    if rule is not None and rule.username is not None:
        return 'Bearer realm="restmq", Basic realm="restmq"'
    return 'Bearer realm="restmq"'


# -- the dashboard: GET / and GET /ui ------------------------------------------------------------


def _row(stats: QueueStats) -> str:
    cells = [stats.length, stats.leased, stats.delayed, stats.dead, stats.consumers]
    numbers = "".join(f"<td class=num>{n}</td>" for n in cells)
    return (
        f'<tr data-queue="{escape(stats.queue)}"><td><a href="{_href(stats.queue)}">{escape(stats.queue)}</a></td>'
        f"{numbers}<td class=num>–</td><td class=num>–</td><td></td>"
        f"<td>{stats.settings.policy.value}</td><td>{stats.settings.status.value}</td><td></td></tr>"
    )


EMPTY_ROW = (
    '<tr class="empty"><td colspan="12">No queues yet. Add a message below, or with '
    "<code>curl -d value=hello http://127.0.0.1:8888/q/test</code></td></tr>"
)


def _cross_site(request: Request) -> bool:
    """A page opened from another site (a link): served without data, which its script then loads from
    this server itself (browser.py)."""
    return bool(request.scope.get(CROSS_SITE))


async def dashboard(request: Request) -> Response:
    """The live dashboard, as GET / without `queue`: one page of queues (`limit`, `after`, as GET /q/), with live
    rates once the page's script runs. A browser without credentials on a server that needs them gets the page with
    status 401; its script asks for a token."""
    if _cross_site(request):
        return HTMLResponse(_fill("index.html", rows="", **NO_PAGER), headers=NO_STORE)
    try:
        page, _ = await listings.visible_page(request)
    except Unauthorized as exc:
        return _shell(request, "index.html", exc, rows="", **NO_PAGER)
    stats = await _service(request).stats(page.queues)
    rows = "".join(_row(s) for s in stats) or EMPTY_ROW
    html = _fill("index.html", rows=rows, **_pager(request, page.next))
    return HTMLResponse(html, headers=NO_STORE)


NO_PAGER = {"pager": " hidden", "prev": " hidden", "next": " hidden"}


def _pager(request: Request, following: str | None) -> dict[str, str]:
    """The placeholders of the page links, for the first paint (and for browsers without JavaScript, whose
    "previous" goes back to the first page)."""
    after = request.query_params.get("after")
    first = "/ui" + (f"?limit={quote(request.query_params['limit'])}" if request.query_params.get("limit") else "")
    return {
        "pager": "" if after or following else " hidden",
        "prev": f' href="{escape(first)}"' if after else " hidden",
        "next": f' href="{escape(listings.page_link("/ui", following, request))}"' if following else " hidden",
    }


# -- the queue page: GET /j/<queue> -------------------------------------------------------------


def _summary(stats: QueueStats) -> str:
    return (
        f"ready <b>{stats.length}</b> · leased <b>{stats.leased}</b> · delayed <b>{stats.delayed}</b>"
        f" · dead <b>{stats.dead}</b> · consumers <b>{stats.consumers}</b> · policy {stats.settings.policy.value}"
        f" · status {stats.settings.status.value} · added {stats.counters.get('added', 0)}"
        f" · delivered {stats.counters.get('delivered', 0)}"
    )


def _message_row(message: Message) -> str:
    key = escape(message.key)
    return (
        f'<tr data-key="{key}"><td><code>{key}</code></td><td class=num>{message.count}</td>'
        f"<td><pre>{escape(message.value)}</pre></td></tr>"
    )


TRUNCATED = "Older messages are not shown: this view holds at most --max-peek-bytes of messages."


def _limit(request: Request, default: int) -> int:
    limit = integer(request.query_params, "limit", default)
    if not 1 <= limit <= shapes.MAX_RECENT:
        raise InvalidParameter(f"limit must be from 1 to {shapes.MAX_RECENT}")
    return limit


async def queue_page(request: Request) -> Response:
    """HTML page with the queue's newest messages (`limit`, 20 by default) and counts, a form to add, a live
    view."""
    queue = check_queue_name(request.path_params["queue"])
    limit = _limit(request, 20)
    title = escape(queue)
    if _cross_site(request):
        return HTMLResponse(_fill("queue.html", queue=title), headers=NO_STORE)
    try:
        await authorize(request, CONSUMER, queue, "read")
    except Unauthorized as exc:
        return _shell(request, "queue.html", exc, queue=title, summary="", rows="")
    service = _service(request)
    (stats,) = await service.stats([queue])
    recent = await service.recent(queue, limit)
    rows = "".join(_message_row(m) for m in recent.messages)
    if not rows:
        rows = '<tr class="empty"><td colspan="3">no waiting messages</td></tr>'
    if recent.truncated:
        rows += f'<tr class="empty"><td colspan="3">{TRUNCATED}</td></tr>'
    return HTMLResponse(_fill("queue.html", queue=title, summary=_summary(stats), rows=rows), headers=NO_STORE)


# -- JSON for the pages ----------------------------------------------------------------------


async def peek(request: Request) -> Response:
    """Up to `limit` (default 20) of the newest ready messages, in reverse delivery order (newest first within a
    priority), and the queue's statistics. Nothing is consumed and no count changes. The messages hold at most
    `--max-peek-bytes` of values (8 MiB by default); `truncated` is true when older messages were left out for that
    limit."""
    queue = request.path_params["queue"]
    limit = _limit(request, 20)
    service = _service(request)
    (stats,) = await service.stats([queue])
    recent = await service.recent(queue, limit)
    body: shapes.Peek = {
        "queue": queue,
        "messages": [{"key": m.key, "value": m.value, "count": m.count} for m in recent.messages],
        "truncated": recent.truncated,
        "stats": cast(shapes.QueueStats, stats.to_dict()),
    }
    return render(request, body, headers=NO_STORE)


async def stats_stream(request: Request) -> Response:
    """With `Accept: text/event-stream` (what EventSource sends): every second an event whose data is the
    GET /stats/ JSON of one page (`limit`, `after`) plus `time` (ms since the epoch), for the queues the caller's
    token covers; every open stream of a process showing the same page gets the same snapshot. `event: failure`
    carries an error. Without it: the statistics of a queue named `stream`, as GET /stats/{queue} always
    answered."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        await authorize(request, CONSUMER, "stream", "read")
        (stats,) = await _service(request).stats(["stream"])
        return render(request, stats.to_dict())
    try:
        await authorize(request, CONSUMER, None, "read")
    except Unauthorized as exc:
        response = error_response(exc)
        response.headers["WWW-Authenticate"] = _challenge(request)
        return response
    after, size = listings.page_params(request)  # a bad limit= or after= is a 400, not a stream of failures
    slots: StreamSlots = request.app.state.stream_slots
    client = client_of(request)
    slots.acquire(client)  # an open dashboard is a stream like any other: 503 TOO_MANY_STREAMS over the limits
    return _SlotStream(_stats_events(request, after, size), lambda: slots.release(client))


STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}

# A page of statistics for dashboards: which page, the queue patterns of the caller's token (None: all), and
# whether the caller may see node addresses.
PageKey = tuple[str | None, int, tuple[str, ...] | None, bool]


class _SlotStream(StreamingResponse):
    """An event stream that gives its stream slot back when it ends, however it ends."""

    def __init__(self, events: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=STREAM_HEADERS)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _stats_events(request: Request, after: str | None, size: int) -> AsyncIterator[bytes]:
    snapshots = _snapshots(request)
    stop = asyncio.Event()
    addresses = await ops.sees_addresses(request)  # an admin's token, once revoked, ends the stream below
    with hooks_of(request.app).calling(stop.set):  # an open dashboard never holds shutdown up
        yield b"retry: 3000\n\n"
        tick = snapshots.tick()
        while not stop.is_set():
            try:
                # Asked again each time: a revoked token stops the stream within the token cache time.
                token = await authorize(request, CONSUMER, None, "read")
                yield await snapshots.get((after, size, token.queues if token else None, addresses), tick)
            except Unauthorized as exc:
                yield b"event: failure\ndata: %s\n\n" % orjson.dumps(exc.to_dict())
                return
            except RestMQError as exc:  # the backend is away: say so, and keep trying
                yield b"event: failure\ndata: %s\n\n" % orjson.dumps(exc.to_dict())
            tick = max(tick + 1, _next_tick(snapshots))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, snapshots.until(tick)))
    yield b"retry: 250\n\n"  # the server is stopping: reconnect soon, maybe to another process


def _next_tick(snapshots: Snapshots[PageKey, bytes]) -> int:
    """The tick of a stream's next event: every stream of the process wakes at the same ticks (so that they share
    the snapshots), at least half an interval after its previous event (the first comes at once, mid-tick)."""
    following = snapshots.tick() + 1
    return following if snapshots.until(following) >= STATS_INTERVAL / 2 else following + 1


def _snapshots(request: Request) -> Snapshots[PageKey, bytes]:
    """This process's statistics events, one per page and interval, shared by every open dashboard."""
    service = _service(request)
    return shared(request.app.state, "stats_snapshots", lambda: Snapshots(_event_maker(service), STATS_INTERVAL))


def _event_maker(service: QueueService) -> Callable[[PageKey], Awaitable[bytes]]:
    async def event(key: PageKey) -> bytes:
        after, size, patterns, addresses = key
        covers = listings.covers_of(patterns)
        page = await service.page(after, size, covers)
        stats = await service.stats(page.queues)
        snapshot = {
            "time": round(time.time() * 1000),
            "queues": [s.to_dict() for s in stats],
            "count": len(stats),
            "next": page.next,
            "nodes": ops.shown_nodes(service.store, addresses),
        }
        return b"data: %s\n\n" % orjson.dumps(snapshot)

    return event
