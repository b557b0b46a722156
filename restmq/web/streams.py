"""Streaming transports: COMET (/c), Server-Sent Events (/sse, or /c with Accept: text/event-stream)
and WebSocket (/ws). Each connection is one Consumer of the process's Streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from restmq.core import protocol
from restmq.core.dispatch import SHUTDOWN, Consumer, Delivery, Streams
from restmq.core.names import check_queue_name
from restmq.core.tokens import TokenRecord
from restmq.errors import BadRequest, Forbidden, RestMQError
from restmq.web import sse
from restmq.web.auth import PRODUCER, WEBSOCKET, authorize
from restmq.web.http import number
from restmq.web.limits import StreamSlots

log = logging.getLogger("restmq.streams")

STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}
SSE_RETRY_MS = 3000
STUCK_GRACE = 2.0  # seconds a closed stream may take to end before its connection is dropped


def streams_of(app: object) -> Streams:
    streams: Streams = app.state.streams  # type: ignore[attr-defined]
    return streams


def _lease(source: object) -> float:
    lease = number(source, "lease")
    if lease < 0 or lease > 12 * 3600:
        raise BadRequest("lease must be from 0 to 43200 seconds", code="PARAMETER_INVALID")
    return lease


def _client(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


async def _open(conn: HTTPConnection, streams: Streams, queue: str, lease: float) -> Consumer:
    """A slot under the connection limits, then a registered consumer."""
    slots: StreamSlots = conn.app.state.stream_slots
    slots.acquire(_client(conn))
    try:
        consumer = await streams.connect(queue, lease)
    except BaseException:
        slots.release(_client(conn))
        raise
    slots.bind(consumer.id, _client(conn))
    return consumer


def _close(conn: HTTPConnection, streams: Streams, consumer: Consumer) -> None:
    conn.app.state.stream_slots.release_holder(consumer.id)
    streams.disconnect(consumer)


async def _deliveries(streams: Streams, consumer: Consumer) -> AsyncIterator[Delivery | None]:
    """Deliveries of `consumer`, with None for each heartbeat interval that passes quietly."""
    while True:
        item = await consumer.next(streams.config.heartbeat)
        if item is False:
            yield None
            continue
        if item is None or item is True:
            if consumer.closed:
                log.info("stream %s of %s closed: %s", consumer.id, consumer.queue, consumer.closed)
            return
        yield item


async def _stuck(consumer: Consumer) -> None:
    """Return once `consumer` was closed and its stream still has not ended STUCK_GRACE seconds later:
    its writes are blocked on a client that stopped reading, so the connection must be dropped."""
    await consumer.wait_closed()
    await asyncio.sleep(STUCK_GRACE)
    log.info("stream %s of %s closed: %s (dropping the connection)", consumer.id, consumer.queue, consumer.closed)


class ConsumerStream(StreamingResponse):
    """The response of one COMET/SSE consumer. It also ends when the consumer is closed (too slow,
    queue deleted, shutdown) but the body cannot finish because the client stopped reading, and it
    always closes the body so that the consumer is disconnected at once."""

    def __init__(self, consumer: Consumer, content: AsyncIterator[bytes], media_type: str) -> None:
        super().__init__(content, media_type=media_type, headers=STREAM_HEADERS)
        self.consumer = consumer

    async def listen_for_disconnect(self, receive: Receive) -> None:
        watch = asyncio.ensure_future(_stuck(self.consumer))
        listen = asyncio.ensure_future(super().listen_for_disconnect(receive))
        try:
            await asyncio.wait({watch, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            listen.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # a body cancelled while its write was blocked is suspended at `yield`: finish it now
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


async def comet(request: Request) -> Response:
    """GET /c/<queue>: one JSON object per line, kept open (SSE when the client asks for it)."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return await server_sent_events(request)
    queue = check_queue_name(request.path_params["queue"])
    callback = request.query_params.get("callback")
    streams = streams_of(request.app)
    consumer = await _open(request, streams, queue, _lease(request.query_params))

    async def body() -> AsyncIterator[bytes]:
        try:
            async for delivery in _deliveries(streams, consumer):
                if delivery is not None:
                    yield sse.comet_line(delivery, callback)
                    streams.written(consumer, delivery)
        finally:
            _close(request, streams, consumer)

    media = "application/javascript" if callback else "application/x-ndjson"
    return ConsumerStream(consumer, body(), media)


async def server_sent_events(request: Request) -> Response:
    """GET /sse/<queue>: SSE with ids, heartbeats and Last-Event-ID replay of broadcast history."""
    queue = check_queue_name(request.path_params["queue"])
    streams = streams_of(request.app)
    last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    consumer = await _open(request, streams, queue, _lease(request.query_params))
    try:
        replay, reached = await streams.replay(queue, last_id) if last_id else ([], True)
    except BaseException:
        _close(request, streams, consumer)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield sse.sse_retry(SSE_RETRY_MS)
            if not reached:
                oldest = replay[0].key if replay else None
                yield sse.sse_named("gap", {"last_event_id": last_id, "oldest": oldest})
            replayed = {entry.key for entry in replay}
            for entry in replay:
                yield sse.sse_history_event(entry)
            async for delivery in _deliveries(streams, consumer):
                if delivery is None:
                    yield sse.SSE_HEARTBEAT
                elif delivery.key not in replayed:
                    yield sse.sse_event(delivery)
                    streams.written(consumer, delivery)
            if consumer.closed == SHUTDOWN:  # reconnect soon, to another process
                yield sse.sse_retry(250)
        finally:
            _close(request, streams, consumer)

    return ConsumerStream(consumer, body(), "text/event-stream")


async def websocket(ws: WebSocket) -> None:
    """GET /ws/<queue>: messages as JSON text frames; client frames are JSON-protocol commands."""
    try:
        queue = check_queue_name(ws.path_params["queue"])
        lease = _lease(ws.query_params)
        token = await authorize(ws, WEBSOCKET, queue, "read")
    except RestMQError as exc:
        # Accept first: a close before the handshake completes is an HTTP 403 and carries no close code.
        await ws.accept()
        await ws.close(code=1008, reason=exc.message[:120])
        return
    streams = streams_of(ws.app)
    await ws.accept()
    try:
        consumer = await _open(ws, streams, queue, lease)
    except RestMQError as exc:  # too many streams (1013: try again later) or backend down (1011)
        await ws.close(
            code=1013 if exc.status == 503 and exc.code != "BACKEND_UNAVAILABLE" else 1011, reason=exc.message[:120]
        )
        return
    send_lock = asyncio.Lock()

    async def send(text: str) -> None:
        async with send_lock:
            await ws.send_text(text)

    async def pump() -> None:
        async for delivery in _deliveries(streams, consumer):
            if delivery is not None:
                await send(sse.ws_text(delivery))
                streams.written(consumer, delivery)

    async def listen() -> None:
        service = ws.app.state.service
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") or message.get("bytes") or b""
            reply = await _command(ws, service, streams, consumer, queue, raw, token)
            await send(orjson.dumps(reply).decode())

    tasks = [asyncio.create_task(pump()), asyncio.create_task(listen()), asyncio.create_task(_stuck(consumer))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None and not isinstance(task.exception(), WebSocketDisconnect):
                log.warning("websocket %s: %s", consumer.id, task.exception())
    finally:
        for task in tasks:
            task.cancel()
        _close(ws, streams, consumer)
        with contextlib.suppress(Exception):
            code = 1012 if consumer.closed == SHUTDOWN else 1000  # 1012: service restart, reconnect
            # a client that stopped reading blocks the close frame too: then the connection just drops
            await asyncio.wait_for(ws.close(code=code, reason=(consumer.closed or "bye")[:120]), STUCK_GRACE)


async def _command(
    ws: WebSocket,
    service: object,
    streams: Streams,
    consumer: Consumer,
    queue: str,
    raw: str | bytes,
    token: TokenRecord | None,
) -> object:
    """Run one client frame; errors become error frames and the connection stays usable."""
    try:
        command = protocol.parse_command(raw)
        command.setdefault("queue", queue)
        target, right = protocol.target(command)
        if right == "write":  # adding through a frame is producing: the producer rules apply
            await authorize(ws, PRODUCER, target, right)
        elif token is not None and not token.allows(target, right):
            raise Forbidden(f"this token has no {right} right on {target}")
        reply = await protocol.execute(service, command)  # type: ignore[arg-type]
        if command.get("cmd") in ("ack", "release"):
            streams.acked(consumer, str(command.get("key")))
        return reply
    except RestMQError as exc:
        return exc.to_dict()
    except Exception:
        log.exception("websocket command failed")
        return {"error": "internal error", "code": "INTERNAL"}
