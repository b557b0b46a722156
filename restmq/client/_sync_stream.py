"""The SSE stream of :meth:`Client.stream`: connect, read events, reconnect with backoff, settle leases.
What it remembers across reconnects (last event id, duplicates, gaps) is in _stream.py.

GENERATED from restmq/client/_aio_stream.py by scripts/generate-sync-client: edit that file, then run the script.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from restmq.client import _calls, _sync_flavor
from restmq.client._stream import Gap, SSEParser, StreamState
from restmq.client.errors import ClientError, ConflictError, NotFoundError, from_response, from_transport
from restmq.client.models import Message

if TYPE_CHECKING:
    from restmq.client.sync import Client

log = logging.getLogger("restmq.client")

RETRYABLE_STATUS = (502, 503, 504)


class Stream:
    """Messages of one queue as the server pushes them (SSE), reconnecting by itself.

    Iterate it; use it as a context manager so the connection closes::

        with client.stream("news") as stream:
            for message in stream:
                print(message.value)

    **Broadcast** queues (the default policy) give every stream each message once. When the
    connection drops (server restart, network), the stream reconnects and sends ``Last-Event-ID``:
    the server replays the messages broadcast meanwhile from its history (the newest 1,000 per
    queue, for 5 minutes), and the stream drops any duplicate. When the history no longer reached
    back, a :class:`Gap` is appended to :attr:`gaps` and a warning is logged.

    **Reconnect backoff**: full jitter, a random wait between 0 and ``base * 2**(failures-1)`` (at
    most ``max_reconnect_delay``), where ``base`` is the server's SSE ``retry:`` once received
    (``reconnect_delay`` before; the cap is never below ``retry:``), so streams dropped together
    come back spread out.

    **Lease mode** (``lease=S``, on a ``roundrobin`` queue): each message goes to one consumer and
    stays leased until acked. With ``auto_ack`` (the default) a message is acked when the loop
    asks for the next one, or when the ``with`` block ends normally; if the loop body raises, the
    message in hand is released instead, so it is redelivered::

        with client.stream("jobs", lease=30) as stream:
            for message in stream:
                handle(message)      # acked once this body finishes without raising

    Settle a message yourself with :meth:`ack`, :meth:`release` or :meth:`extend` of the stream (not
    of the client), and auto-ack leaves it alone. A message whose lease ran out (or that came back
    when the connection dropped) is redelivered with a higher ``count``; its late auto-ack is logged.
    """

    def __init__(
        self,
        client: Client,
        queue: str,
        *,
        lease: float | None = None,
        last_event_id: str | None = None,
        auto_ack: bool = True,
        reconnect: bool = True,
        reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 5.0,
        max_reconnects: int | None = None,
    ) -> None:
        self.client = client
        self.queue = queue
        self.path = _calls.stream_path(queue)
        self.auto_ack = auto_ack
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.max_reconnects = max_reconnects
        self._state = StreamState(queue, lease, last_event_id)
        self._parser = SSEParser()
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._pending: Message | None = None
        self._closed = False
        self._failures = 0
        self._wake = threading.Event()

    # -- what it knows -------------------------------------------------------------------------

    @property
    def last_event_id(self) -> str | None:
        """The id of the newest event received (sent as ``Last-Event-ID`` on reconnect)."""
        return self._state.last_event_id

    @property
    def gaps(self) -> list[Gap]:
        """Reconnects where the server's history did not reach back to the last event id."""
        return self._state.gaps

    @property
    def connects(self) -> int:
        """How many times the stream connected (1 + reconnects)."""
        return self._state.connects

    @property
    def closed(self) -> bool:
        return self._closed

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Message:
        self._settle_pending(ack=True)
        while True:
            if self._closed:
                raise StopIteration
            if self._lines is None:
                self._open()
                continue
            try:
                line = next(self._lines)
            except StopIteration:
                self._lost("the server ended the stream", None)
                continue
            except httpx.TransportError as exc:
                self._lost(str(exc) or type(exc).__name__, exc)
                continue
            except httpx.StreamError as exc:  # closing from another task or thread ended the read
                self._lost(str(exc) or type(exc).__name__, None)
                continue
            self._failures = 0
            event = self._parser.feed(line)
            if event is None:
                continue
            message = self._state.handle(event)
            if message is None:
                continue
            if message.leased and self.auto_ack:
                self._pending = message
            return message

    def _open(self) -> None:
        if self._failures:
            delay = self._state.reconnect_delay(self._failures, self.reconnect_delay, self.max_reconnect_delay)
            _sync_flavor.wait_event(self._wake, delay)
            if self._closed:
                return
        http = self.client._http
        request = http.build_request(
            "GET",
            self.path,
            params=self._state.request_params(),
            headers=self._state.request_headers(),
            timeout=_calls.timeout(self.client.stream_timeout, self.client.connect_timeout),
        )
        try:
            response = http.send(request, stream=True)
        except httpx.TransportError as exc:
            self._failed(from_transport(exc, self.client.url), exc)
            return
        if response.status_code != 200:
            response.read()
            response.close()
            error = from_response(response)
            if response.status_code in RETRYABLE_STATUS:
                self._failed(error, None)
                return
            self.close()
            raise error
        self._response = response
        self._lines = response.iter_lines()
        self._state.connects += 1
        if self._state.connects > 1:
            log.info("stream %s: reconnected (last event %s)", self.queue, self._state.last_event_id)

    def _gives_up(self) -> bool:
        """Count one more failure in a row; True when no reconnect is left."""
        self._failures += 1
        return not self.reconnect or (self.max_reconnects is not None and self._failures > self.max_reconnects)

    def _failed(self, error: ClientError, cause: BaseException | None) -> None:
        if self._gives_up():
            self.close()
            raise error from cause
        log.warning("stream %s: %s; reconnecting", self.queue, error)

    def _lost(self, reason: str, exc: httpx.TransportError | None) -> None:
        self._drop_connection()
        if self._closed:
            return
        if self._gives_up():
            self.close()
            if exc is not None:
                raise from_transport(exc, self.client.url) from exc
            return
        log.info("stream %s: connection lost (%s); reconnecting", self.queue, reason)

    def _drop_connection(self) -> None:
        self._parser.reset()
        self._lines = None
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail again; it is gone anyway
                response.close()

    # -- settling ------------------------------------------------------------------------------

    def _settle_pending(self, *, ack: bool) -> None:
        message, self._pending = self._pending, None
        if message is None:
            return
        try:
            if ack:
                self.client.ack(message)
            else:
                self.client.release(message)
        except (ConflictError, NotFoundError) as exc:
            if ack:  # the lease ran out (or the connection dropped) first: it will be delivered again
                log.warning("stream %s: auto-ack of %s failed: %s", self.queue, message.key, exc)
            # a release that finds the message already back in the queue (the server hands back the
            # unacked messages of a closed connection) has nothing left to do
        except ClientError as exc:
            what = "ack" if ack else "release"
            log.warning("stream %s: auto-%s of %s failed: %s", self.queue, what, message.key, exc)

    def _forget(self, message: Message | str) -> None:
        key = message.key if isinstance(message, Message) else message
        if self._pending is not None and self._pending.key == key:
            self._pending = None

    def ack(self, message: Message | str, *, count: int | None = None) -> int:
        """Ack a message of this stream now (auto-ack then leaves it alone)."""
        self._forget(message)
        return self.client.ack(message, count=count)

    def release(self, message: Message | str, *, count: int | None = None, delay: float = 0.0) -> int:
        """Give a message of this stream back to the queue (after ``delay`` seconds)."""
        self._forget(message)
        return self.client.release(message, count=count, delay=delay)

    def extend(self, message: Message | str, lease: float, *, count: int | None = None) -> int:
        """Keep a message of this stream leased ``lease`` more seconds."""
        return self.client.extend(message, lease, count=count)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; a message still in hand is left to its lease (see ``__exit__``).

        Safe to call from another thread or task: a blocked iteration ends.
        """
        self._closed = True
        self._wake.set()
        _sync_flavor.interrupt_read(self._response)
        self._drop_connection()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:  # ack before closing: closing hands unacked messages back to the queue
            self._settle_pending(ack=True)
            self.close()
        else:  # close first, so the released message cannot come back on this very connection
            self.close()
            self._settle_pending(ack=False)
