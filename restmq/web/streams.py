"""Streaming transports: COMET (/c), Server-Sent Events (/sse, or /c with Accept: text/event-stream)
and WebSocket (/ws). Each connection is one Consumer of the process's Streams."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from restmq.core import deadline, protocol
from restmq.core.dispatch import SHUTDOWN, Consumer, Delivery, Streams
from restmq.core.model import HistoryEntry
from restmq.core.names import check_queue_name
from restmq.core.tokens import TokenRecord
from restmq.errors import BadRequest, RestMQError
from restmq.web import sse
from restmq.web.auth import COMET, PRODUCER, WEBSOCKET, authorize
from restmq.web.http import callback_of, number
from restmq.web.limits import StreamSlots, client_of
from restmq.web.token_watch import POLICY_CLOSES, TokenWatch

log = logging.getLogger("restmq.streams")

STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}
SHUTDOWN_RETRY_MS = 250  # on shutdown: reconnect soon, to another process
STUCK_GRACE = 2.0  # seconds a closed stream may take to end before its connection is dropped
REPLAY_CHUNK = 64 * 1024  # bytes of replayed history per write


def streams_of(app: object) -> Streams:
    streams: Streams = app.state.streams  # type: ignore[attr-defined]
    return streams


def lease_of(conn: HTTPConnection) -> float:
    """The stream's lease= (0: no lease), within the server's max_lease."""
    lease = number(conn.query_params, "lease")
    max_lease: float = conn.app.state.settings.limits.max_lease
    if lease < 0 or lease > max_lease:
        raise BadRequest(f"lease must be from 0 to {max_lease:g} seconds", code="PARAMETER_INVALID")
    return lease


async def _open(
    conn: HTTPConnection, streams: Streams, queue: str, lease: float, token: TokenRecord | None
) -> Consumer:
    """A slot under the connection limits, then a registered consumer, closed when `token` (the one
    that authorized the connection, if any) is revoked or expires."""
    slots: StreamSlots = conn.app.state.stream_slots
    slots.acquire(client_of(conn))
    try:
        consumer = await streams.connect(queue, lease)
    except BaseException:
        slots.release(client_of(conn))
        raise
    slots.bind(consumer.id, client_of(conn))
    if token is not None:
        watch: TokenWatch = conn.app.state.token_watch
        watch.watch(token, consumer)
    return consumer


def _close(conn: HTTPConnection, streams: Streams, consumer: Consumer) -> None:
    conn.app.state.stream_slots.release_holder(consumer.id)
    streams.disconnect(consumer)


def _stuck(consumer: Consumer) -> asyncio.Future[None]:
    """A future done STUCK_GRACE seconds after `consumer` was closed: a stream still running then is
    blocked writing to a client that stopped reading, and its connection must be dropped."""
    loop = asyncio.get_running_loop()
    stuck: asyncio.Future[None] = loop.create_future()

    def mark() -> None:
        if not stuck.done():
            log.info("stream %s of %s closed: %s (dropping it)", consumer.id, consumer.queue, consumer.closed)
            stuck.set_result(None)

    consumer.on_close(lambda: loop.call_later(STUCK_GRACE, mark))
    return stuck


async def _watch_disconnect(receive: Receive, consumer: Consumer) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    consumer.close("client disconnected")


@functools.cache
def _raw_headers(media_type: str) -> list[tuple[bytes, bytes]]:
    """One list per media type, shared by every stream (the server only reads it)."""
    headers = {**STREAM_HEADERS, "Content-Type": media_type}
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class ConsumerStream(Response):
    """The ASGI response of one COMET/SSE consumer: the opening chunks (an SSE replay) one by one, then
    everything due as one chunk. It costs the server's own task plus one that notices the client
    leaving (none on a server that offers a DirectStream, which also writes to it while it waits);
    it ends when the consumer is closed (client gone, too slow, queue deleted, shutdown), even when
    the client stopped reading."""

    def __init__(
        self,
        request: Request,
        consumer: Consumer,
        media_type: str,
        encode: Callable[[list[Delivery]], bytes],
        heartbeat: bytes = b"",
        opening: Sequence[bytes] = (),
        closing: Callable[[Consumer], bytes] = lambda consumer: b"",
    ) -> None:  # no Response.__init__: a stream has no body or Content-Length of its own
        self.request, self.consumer, self.encode = request, consumer, encode
        self.heartbeat, self.closing = heartbeat, closing
        self.opening = list(reversed(opening))  # popped from the end as written (a deque holds a 64-slot block)
        self.raw_headers = _raw_headers(media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        consumer, streams = self.consumer, streams_of(self.request.app)
        watcher: asyncio.Future[None] | None = None
        self._task = task = asyncio.current_task()
        assert task is not None
        consumer.on_close(self._closed)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            self._direct = scope.get(sse.HTTP_STREAM)
            if self._direct is not None:  # the dispatcher's callback writes to this stream while it waits
                consumer.sink = self._sink
                self._direct.on_disconnect(self._client_left)
            else:
                watcher = asyncio.ensure_future(_watch_disconnect(receive, consumer))
            while self.opening:  # one write at a time: the server waits for a slow client between them
                chunk = self.opening.pop()  # and what was written is not kept
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            while (batch := await consumer.take()) is not None:
                chunk = self.encode(batch) if batch else self.heartbeat
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                for delivery in batch:
                    streams.written(consumer, delivery)
            log.info("stream %s of %s closed: %s", consumer.id, consumer.queue, consumer.closed)
            await send({"type": "http.response.body", "body": self.closing(consumer), "more_body": False})
        except asyncio.CancelledError:
            if not self._dropped or task.cancelling() != 1:
                raise
            task.uncancel()  # our own drop: the server closes the connection of an unfinished response
        finally:
            self._task = None
            consumer.sink = self._direct = None
            if watcher is not None:
                watcher.cancel()
            if self._drop is not None:
                self._drop.cancel()
            _close(self.request, streams, consumer)

    # Bound methods rather than a future and closures per stream: thousands of idle streams hold them.
    _task: asyncio.Task[Any] | None = None
    _drop: asyncio.TimerHandle | None = None
    _dropped = False
    _direct: sse.DirectStream | None = None

    def _sink(self, batch: list[Delivery]) -> bool:
        """Write `batch` now, as the stream would once it had taken it (Consumer.sink)."""
        assert self._direct is not None
        if not self._direct.write_now(self.encode(batch)):
            return False
        if self.consumer.inflight:  # roundrobin messages to ack (a broadcast has none: skip the lookups)
            streams = streams_of(self.request.app)
            for delivery in batch:
                streams.written(self.consumer, delivery)
        return True

    def _client_left(self) -> None:
        self.consumer.close("client disconnected")

    def _closed(self) -> None:
        """The consumer is closed: the stream has STUCK_GRACE seconds to end; one still running then is
        blocked writing to a client that stopped reading, and its connection is dropped."""
        if self._task is not None:
            self._drop = asyncio.get_running_loop().call_later(STUCK_GRACE, self._drop_stuck)

    def _drop_stuck(self) -> None:
        if self._task is not None and not self._task.done():
            consumer = self.consumer
            log.info("stream %s of %s closed: %s (dropping it)", consumer.id, consumer.queue, consumer.closed)
            self._dropped = True
            self._task.cancel()


async def comet(request: Request) -> Response:
    """COMET: kept open; one JSON object `{key,value}` per line (`\\r\\n`). With `callback=` each line is a JSONP
    call; with `Accept: text/event-stream` the channel speaks SSE as /sse/{queue}. See /asyncapi.json."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return await server_sent_events(request)
    queue = check_queue_name(request.path_params["queue"])
    callback = callback_of(request)
    streams = streams_of(request.app)
    token = await authorize(request, COMET, queue, "read")  # cached: the guard has just checked it
    consumer = await _open(request, streams, queue, lease_of(request), token)

    if not callback:
        return ConsumerStream(request, consumer, "application/x-ndjson", _comet_lines)

    def encode(batch: list[Delivery]) -> bytes:
        return b"".join(sse.comet_line(delivery, callback) for delivery in batch)

    return ConsumerStream(request, consumer, "application/javascript", encode)


def _comet_lines(batch: list[Delivery]) -> bytes:
    return b"".join(sse.comet_line(delivery) for delivery in batch)


async def server_sent_events(request: Request) -> ConsumerStream:
    """Server-Sent Events: each message is an event `id: <key>` / `data: {key,value[,count]}`; `retry:` first
    (--sse-retry, 3000 ms by default), a `: heartbeat` comment every 15 s. Reconnect with `Last-Event-ID: <key>` (or
    `?last_event_id=`) to replay the broadcast history after it (the newest 1,000 per queue, kept 5 minutes, at most
    --max-replay-bytes of it: the newest); an `event: gap` comes first when history asked for is really missing:
    the history no longer reaches back (broadcast queues) or older history did not fit. See /asyncapi.json."""
    queue = check_queue_name(request.path_params["queue"])
    streams = streams_of(request.app)
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    max_bytes: int = request.app.state.settings.limits.max_replay_bytes
    token = await authorize(request, COMET, queue, "read")  # cached: the guard has just checked it
    consumer = await _open(request, streams, queue, lease_of(request), token)
    try:
        replay, reached = await streams.replay(queue, last_id, max_bytes) if last_id else ([], True)
    except BaseException:
        _close(request, streams, consumer)
        raise
    events, reached = _newest_events(replay, reached, max_bytes)
    replayed = {entry.key for entry in replay[len(replay) - len(events) :]}
    retry_ms = round(request.app.state.settings.sse_retry * 1000)
    opening = [sse.sse_retry(retry_ms)]
    if not reached:
        oldest = replay[-len(events)].key if events else None
        opening.append(sse.sse_named("gap", {"last_event_id": last_id, "oldest": oldest}))
    del replay  # only the encoded events stay until written
    opening += _chunks(events)
    encode = _sse_encoder(replayed) if replayed else _sse_events  # shared: an idle stream holds no closure
    return ConsumerStream(
        request, consumer, "text/event-stream", encode, sse.SSE_HEARTBEAT, opening, _sse_closing(retry_ms)
    )


def _sse_events(batch: list[Delivery]) -> bytes:
    if len(batch) == 1:  # the common case while messages trickle in
        return sse.sse_event(batch[0])
    return b"".join(sse.sse_event(delivery) for delivery in batch)


def _sse_encoder(replayed: set[str]) -> Callable[[list[Delivery]], bytes]:
    """After a replay: what was replayed is not sent twice."""

    def encode(batch: list[Delivery]) -> bytes:
        return b"".join(sse.sse_event(delivery) for delivery in batch if delivery.key not in replayed)

    return encode


@functools.cache
def _sse_closing(retry_ms: int) -> Callable[[Consumer], bytes]:
    """The last chunk: on shutdown a short `retry:` (reconnect soon, to another process)."""

    def closing(consumer: Consumer) -> bytes:
        return sse.sse_retry(min(SHUTDOWN_RETRY_MS, retry_ms)) if consumer.closed == SHUTDOWN else b""

    return closing


def _newest_events(replay: list[HistoryEntry], reached: bool, max_bytes: int) -> tuple[list[bytes], bool]:
    """The SSE events of the newest history (oldest first) that fit in `max_bytes`, and whether the
    replay is still complete: when older history does not fit, the client is told of a gap."""
    events: list[bytes] = []
    size = 0
    for entry in reversed(replay):
        event = sse.sse_history_event(entry)
        size += len(event)
        if size > max_bytes:
            reached = False
            break
        events.append(event)
    events.reverse()
    return events, reached


def _chunks(events: list[bytes]) -> list[bytes]:
    """Events (emptied from `events` as they go) joined into writes of about REPLAY_CHUNK bytes, so
    that the history is held once, not twice, while it waits to be written."""
    chunks: list[bytes] = []
    group: list[bytes] = []
    size = 0
    events.reverse()
    while events:
        group.append(events.pop())
        size += len(group[-1])
        if size >= REPLAY_CHUNK or not events:
            chunks.append(b"".join(group))
            group, size = [], 0
    return chunks


# What a client's frame gets back: (ws, service, streams, consumer, channel queue, frame) -> the reply frame
FrameAnswer = Callable[[WebSocket, Any, Streams, Consumer, str, "str | bytes"], Awaitable[str]]


async def websocket(ws: WebSocket) -> None:
    """WebSocket (RFC 6455): one JSON text frame per message. The client may send JSON-protocol commands as frames
    (the queue defaults to the channel's) and gets a JSON reply frame each; a malformed frame gets an error frame.
    An invalid queue name or lease closes with code 1008; purging the queue closes with 1000. acl.conf's cookie
    `auth=user:pass` is accepted."""
    await serve_websocket(ws, command_reply)


async def command_reply(
    ws: WebSocket, service: Any, streams: Streams, consumer: Consumer, queue: str, raw: str | bytes
) -> str:
    """The JSON reply (or error) frame to a client's command frame."""
    return orjson.dumps(await _command(ws, service, streams, consumer, queue, raw)).decode()


async def serve_websocket(ws: WebSocket, answer: FrameAnswer) -> None:
    """One WebSocket consumer, from the handshake to the close; each client frame is answered by `answer`."""
    try:
        queue = check_queue_name(ws.path_params["queue"])
        lease = lease_of(ws)
        token = await authorize(ws, WEBSOCKET, queue, "read")
    except RestMQError as exc:
        # Accept first: a close before the handshake completes is an HTTP 403 and carries no close code.
        await ws.accept()
        await ws.close(code=1008, reason=exc.message[:120])
        return
    streams = streams_of(ws.app)
    await ws.accept()
    try:
        consumer = await _open(ws, streams, queue, lease, token)
    except RestMQError as exc:
        await ws.close(code=_refused_code(exc), reason=exc.message[:120])
        return
    send_lock = asyncio.Lock()

    async def send(text: str) -> None:
        async with send_lock:
            await ws.send_text(text)

    async def listen() -> None:
        service = ws.app.state.service
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            await send(await answer(ws, service, streams, consumer, queue, raw))

    stuck = _stuck(consumer)
    tasks = [asyncio.create_task(_pump(ws, streams, consumer, send_lock)), asyncio.create_task(listen())]
    try:
        done, _ = await asyncio.wait([*tasks, stuck], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stuck}:
            if task.exception() is not None and not isinstance(task.exception(), WebSocketDisconnect):
                log.warning("websocket %s: %s", consumer.id, task.exception())
    finally:
        for task in tasks:
            task.cancel()
        stuck.cancel()
        _close(ws, streams, consumer)
        with contextlib.suppress(Exception):
            code = _close_code(consumer.closed)
            # a client that stopped reading blocks the close frame too: then the connection just drops
            await asyncio.wait_for(ws.close(code=code, reason=(consumer.closed or "bye")[:120]), STUCK_GRACE)


async def _pump(ws: WebSocket, streams: Streams, consumer: Consumer, send_lock: asyncio.Lock) -> None:
    """Write the consumer's messages, a text frame each; on a server that takes several frames in one event
    (restmq/cli/uvicorn_ws.py), everything that is due goes as one event and one write."""
    many = sse.WS_TEXTS in ws.scope.get("extensions", {})
    while (batch := await consumer.take()) is not None:
        if many and batch:
            async with send_lock:
                await ws.send({"type": "websocket.send", "texts": [sse.ws_payload(d) for d in batch]})
            for delivery in batch:
                streams.written(consumer, delivery)
            continue
        for delivery in batch:
            async with send_lock:
                await ws.send_text(sse.ws_text(delivery))
            streams.written(consumer, delivery)


def _refused_code(exc: RestMQError) -> int:
    """Too many streams: 1013 (try again later); the backend is down: 1011."""
    return 1013 if exc.status == 503 and exc.code != "BACKEND_UNAVAILABLE" else 1011


def _close_code(reason: str | None) -> int:
    if reason == SHUTDOWN:
        return 1012  # service restart: reconnect
    if reason in POLICY_CLOSES:
        return 1008  # policy violation: the token was revoked or expired
    return 1000


async def _command(
    ws: WebSocket, service: object, streams: Streams, consumer: Consumer, queue: str, raw: str | bytes
) -> object:
    """Run one client frame; errors become error frames and the connection stays usable. Each frame is
    authorized when it runs (not by the rights the connection opened with): a token revoked or expired
    since then is refused."""
    bound = deadline.start(ws.app.state.settings.backend_timeout)  # a frame is a request of its own
    try:
        return await _run_command(ws, service, streams, consumer, queue, raw)
    except RestMQError as exc:
        return exc.to_dict()
    except Exception:
        log.exception("websocket command failed")
        return {"error": "internal error", "code": "INTERNAL"}
    finally:
        deadline.finish(bound)


async def _run_command(
    ws: WebSocket, service: object, streams: Streams, consumer: Consumer, queue: str, raw: str | bytes
) -> object:
    command = protocol.parse_command(raw)
    command.setdefault("queue", queue)
    target, right = protocol.target(command)
    # adding through a frame is producing: the producer rules apply
    await authorize(ws, PRODUCER if right == "write" else WEBSOCKET, target, right)
    reply = await protocol.execute(service, command)  # type: ignore[arg-type]
    if command.get("cmd") in ("ack", "release"):
        streams.acked(consumer, str(command.get("key")))
    return reply
