"""uvicorn's httptools protocol with every connection bounded in time.

uvicorn bounds only the wait for a next request after a response (its keep-alive timeout), and any
byte that arrives cancels that wait until the next response. So a connection could be held forever
by one that opens and sends nothing, trickles its headers a byte at a time (slowloris), or trickles
a body that nobody reads. Here:

- every request's headers must be complete within the idle timeout (`--idle-timeout`) of the
  connection opening or of the request's first byte (granian's header read timeout does the same);
- a body being read must arrive within `--body-timeout` (restmq/web/http.py read_body: 408);
- after a response, the unread rest of its request's body (sent to a route that reads none, or
  left after a 408 or a 413) is not waited for: the connection is half-closed at once, what still
  arrives is dropped for LINGER seconds at most, so that the client can read the response before
  the connection is reset, and then it is closed (granian closes at once). A response that starts
  before its request's body has all arrived says `Connection: close`, so that a keep-alive client
  does not send its next request on the closing connection;
- an idle keep-alive connection is closed after `--idle-timeout` (uvicorn's own timer).

And a response of known length (a Content-Length, or a 204 or 304) goes out in one write: uvicorn
writes the head on `http.response.start` and the body on `http.response.body`, two system calls
where one will do (see OneWriteCycle).

A streamed body (no Content-Length) to an HTTP/1.0 request is close-delimited: HTTP/1.0 has no
chunked coding, so its bytes go out as they are and the connection ends with it (uvicorn itself
would send it chunked).

A streamed body can also be written without the ASGI send chain: the response start of a stream puts
its cycle in the scope as a DirectStream (restmq/web/sse.py HTTP_STREAM), whose synchronous
`write_now` a stream's consumer calls from the dispatcher's callback: no task switch, no send through
the middleware frames. It refuses (returns False) while the transport's write buffer is over its
high-water mark, so backpressure holds. Its `on_disconnect` tells the stream that the client left,
without a task waiting in `receive`. And what an idle stream holds is lighter (restmq/cli/uvicorn_lean.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from restmq.cli.uvicorn_lean import LeanEvent, LeanFlowControl, Pipeline
from restmq.web.sse import HTTP_STREAM

LINGER = 1.0  # seconds a half-closed connection keeps dropping the rest of a body before it closes


class TimeBoundProtocol(HttpToolsProtocol):
    _header_deadline: asyncio.TimerHandle | None = None
    _linger: asyncio.TimerHandle | None = None
    _discarding = False  # the response is sent; what arrives now is the rest of a body nobody reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = LeanFlowControl(transport)
        self.pipeline = Pipeline()  # type: ignore[assignment]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._discarding:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (not an upgrade): see OneWriteCycle
            self.cycle.__class__ = OneWriteCycle

    def on_response_complete(self) -> None:
        cycle = self.cycle  # a later, pipelined request only exists once this one's body has ended
        if cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            self.server_state.total_requests += 1
            self._drop_the_rest_of_the_body()
            return
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(cycle, OneWriteCycle):
            cycle.client_left()

    def _drop_the_rest_of_the_body(self) -> None:
        self._discarding = True
        self._disarm()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()  # read (and drop) rather than let the client's writes block
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER, self.transport.close)
        else:  # TLS has no half-close
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.timeout_keep_alive, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing the head of a response of known length together with its body, and
    saying `Connection: close` on a response that starts before its request's body has all arrived.

    Such a response's body message always makes uvicorn write (b"" for an empty body), so the held
    head always goes out; HEAD responses (no body write) and streamed ones are written as before. A
    cycle that ends after its head without a body (the app failed midway) closes the connection, as
    before, only without the head.

    A streamed response puts the cycle in its scope as a DirectStream (`write_now`, `on_disconnect`),
    and is close-delimited for an HTTP/1.0 request."""

    close_delimited = False  # an HTTP/1.0 stream: no chunked coding, the connection's end is the body's
    _on_disconnect: Callable[[], object] | None = None

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            if self.more_body:  # the body is still coming: the connection ends after this response (say so)
                self.keep_alive = False
            if self._known_length(message):
                self.transport = HeldHead(self, self.transport)  # type: ignore[assignment]
            elif self.scope["method"] != "HEAD":
                self._streamed()
        elif self.close_delimited and message["type"] == "http.response.body" and not self.response_complete:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if not self.disconnected:
                self._write_close_delimited(message.get("body", b""), more_body=message.get("more_body", False))
            return
        await super().send(message)

    def _known_length(self, message: Any) -> bool:
        if self.scope["method"] == "HEAD":
            return False
        if message["status"] in (204, 304):
            return True
        return any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))

    def _streamed(self) -> None:
        if self.scope.get("http_version") == "1.0":  # keep_alive is already False: uvicorn says `connection: close`
            self.close_delimited = True
            self.chunked_encoding = False  # uvicorn adds no transfer-encoding then
        # An idle stream holds its cycle for long: a lighter event than asyncio's (its request has been read)
        self.message_event = LeanEvent(self.message_event.is_set())  # type: ignore[assignment]
        self.scope[HTTP_STREAM] = self  # type: ignore[literal-required]

    def write_now(self, body: bytes) -> bool:
        """Write a part of a streamed body at once, if the connection takes it now: False while the
        transport's buffer is over its high-water mark (or the client is gone), when the caller must
        go through `send`, which waits for it to drain."""
        if self.flow.write_paused or self.disconnected or self.response_complete:
            return False
        if self.close_delimited:
            self.transport.write(body)
        elif body:
            self.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

    def on_disconnect(self, callback: Callable[[], object]) -> None:
        if self.disconnected:
            callback()
        else:
            self._on_disconnect = callback

    def client_left(self) -> None:
        callback, self._on_disconnect = self._on_disconnect, None
        if callback is not None:
            callback()

    def _write_close_delimited(self, body: bytes, *, more_body: bool) -> None:
        if body:
            self.transport.write(body)
        if not more_body:
            self.response_complete = True
            self.message_event.set()
            self.transport.close()
            self.on_response()


class HeldHead:
    """A cycle's transport while its response head waits: the next write sends head and body at once (one
    writev), and puts the real transport back."""

    __slots__ = ("cycle", "head", "transport")

    def __init__(self, cycle: RequestResponseCycle, transport: asyncio.Transport) -> None:
        self.cycle = cycle
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.head = data
            return
        self.cycle.transport = self.transport
        self.transport.writelines((self.head, data))

    def __getattr__(self, name: str) -> Any:  # close(), is_closing(), ...: the real transport's
        return getattr(self.transport, name)
