"""The asyncio RestMQ client: :class:`AsyncClient`, its SSE :class:`AsyncStream` and the :meth:`AsyncClient.consume`
worker loop. It mirrors :class:`restmq.client.sync.Client` method for method."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from restmq.client import _calls
from restmq.client._stream import Gap, SSEParser, StreamState
from restmq.client.errors import ClientError, ConflictError, NotFoundError, from_response, from_transport
from restmq.client.models import ConsumeStats, Control, Message, Overview, QueueStats

T = TypeVar("T")
log = logging.getLogger("restmq.client")

RETRYABLE_STATUS = (502, 503, 504)
Handler = Callable[[Message], Awaitable[object] | object]


class AsyncClient:
    """An asyncio client for one RestMQ server; see :class:`restmq.Client` for the options and errors.

    Create it inside the event loop that uses it; ``async with AsyncClient() as client: ...`` or
    ``await client.aclose()`` when done.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = _calls.DEFAULT_TIMEOUT,
        connect_timeout: float = _calls.DEFAULT_CONNECT_TIMEOUT,
        stream_timeout: float = _calls.DEFAULT_STREAM_TIMEOUT,
        max_connections: int = _calls.DEFAULT_MAX_CONNECTIONS,
        headers: Mapping[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _calls.resolve_url(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.stream_timeout = stream_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_calls.base_headers(_calls.resolve_token(token), headers),
            timeout=_calls.timeout(timeout, connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=verify,
            transport=transport,
        )

    # -- plumbing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"

    async def _run(self, call: _calls.Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params or None,
                data=call.data,
                content=call.content,
                headers=call.headers or None,
                timeout=_calls.timeout(self.timeout + call.wait, self.connect_timeout),
            )
        except httpx.TransportError as exc:
            raise from_transport(exc, self.url) from exc
        return call.finish(response)

    # -- producing ------------------------------------------------------------------------------

    async def add(
        self,
        queue: str,
        value: object,
        *,
        delay: float | None = None,
        ttl: float | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Add one message; returns its key. See :meth:`restmq.Client.add`."""
        return await self._run(
            _calls.add(queue, value, delay=delay, ttl=ttl, priority=priority, idempotency_key=idempotency_key)
        )

    async def add_batch(
        self,
        queue: str,
        values: Iterable[object],
        *,
        delay: float | None = None,
        ttl: float | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Add many messages in one request, all or nothing. See :meth:`restmq.Client.add_batch`."""
        call = _calls.add_batch(queue, values, delay=delay, ttl=ttl, priority=priority, idempotency_key=idempotency_key)
        if call.content == b"[]":
            return []
        return await self._run(call)

    # -- consuming ------------------------------------------------------------------------------

    @overload
    async def get(self, queue: str, *, wait: float = 0.0, lease: float | None = None) -> Message | None: ...
    @overload
    async def get(self, queue: str, *, count: int, wait: float = 0.0, lease: float | None = None) -> list[Message]: ...
    async def get(
        self, queue: str, *, count: int | None = None, wait: float = 0.0, lease: float | None = None
    ) -> Message | None | list[Message]:
        """``GET /q/<queue>`` (pop, or lease with ``lease=S``). See :meth:`restmq.Client.get`."""
        messages = await self._run(_calls.get(queue, count=count, wait=wait, lease=lease))
        if count is not None:
            return messages
        return messages[0] if messages else None

    @overload
    async def take(self, queue: str, *, wait: float = 0.0) -> Message | None: ...
    @overload
    async def take(self, queue: str, *, count: int, wait: float = 0.0) -> list[Message]: ...
    async def take(self, queue: str, *, count: int | None = None, wait: float = 0.0) -> Message | None | list[Message]:
        """Destructive read: :meth:`get` without a lease."""
        messages = await self._run(_calls.get(queue, count=count, wait=wait, lease=None))
        if count is not None:
            return messages
        return messages[0] if messages else None

    @overload
    async def lease(self, queue: str, seconds: float, *, wait: float = 0.0) -> Message | None: ...
    @overload
    async def lease(self, queue: str, seconds: float, *, count: int, wait: float = 0.0) -> list[Message]: ...
    async def lease(
        self, queue: str, seconds: float, *, count: int | None = None, wait: float = 0.0
    ) -> Message | None | list[Message]:
        """:meth:`get` with ``lease=seconds``."""
        messages = await self._run(_calls.get(queue, count=count, wait=wait, lease=seconds))
        if count is not None:
            return messages
        return messages[0] if messages else None

    async def soft_get(self, queue: str) -> Message | None:
        """The original soft get: the message stays queued, its count rises. ``None`` when empty or stopped."""
        return await self._run(_calls.soft_get(queue))

    async def delete_message(self, key: str) -> bool:
        """Remove the message ``key`` wherever it is; True when it existed."""
        return await self._run(_calls.delete_message(key))

    async def ack(self, message: Message | str, *, count: int | None = None) -> int:
        """Acknowledge a leased message. See :meth:`restmq.Client.ack`."""
        return await self._run(_calls.ack(message, count=count))

    async def release(self, message: Message | str, *, count: int | None = None, delay: float = 0.0) -> int:
        """Give a leased message back (after ``delay`` seconds)."""
        return await self._run(_calls.release(message, count=count, delay=delay))

    async def extend(self, message: Message | str, lease: float, *, count: int | None = None) -> int:
        """Keep a leased message ``lease`` more seconds from now."""
        return await self._run(_calls.extend(message, lease, count=count))

    # -- queues, settings, statistics ----------------------------------------------------------

    async def purge(self, queue: str) -> int:
        """Remove every message of the queue; returns how many."""
        return await self._run(_calls.purge(queue))

    async def queues(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The names of the queues that hold messages, in name order: every page of ``GET /q/`` in turn, or the
        first ``limit`` names (after ``after``, when given)."""
        _calls.check_limit(limit)
        names: list[str] = []
        while (want := _calls.remaining(limit, len(names))) is None or want > 0:
            found, after = await self._run(_calls.queue_page(after, want))
            names += found[:want]
            if after is None:
                break
        return names

    async def policy(self, queue: str) -> str:
        """The streaming policy: ``broadcast`` or ``roundrobin``."""
        return await self._run(_calls.policy(queue))

    async def set_policy(self, queue: str, policy: str) -> str:
        """Set the streaming policy; returns it."""
        return await self._run(_calls.policy(queue, policy))

    async def control(self, queue: str) -> Control:
        """Flow status and ``max_deliveries`` of the queue."""
        return await self._run(_calls.control(queue))

    async def set_control(self, queue: str, *, status: str | None = None, max_deliveries: int | None = None) -> Control:
        """Start or stop delivery, and/or set ``max_deliveries`` (0 = unlimited)."""
        if status is None and max_deliveries is None:
            raise ValueError("give status and/or max_deliveries")
        return await self._run(_calls.control(queue, status=status, max_deliveries=max_deliveries))

    async def stats(self, queue: str) -> QueueStats:
        """Statistics of one queue."""
        return await self._run(_calls.stats(queue))

    async def stats_all(self, *, limit: int | None = None, after: str | None = None) -> Overview:
        """Statistics of every queue (every page of ``GET /stats/`` in turn), or of the first ``limit`` queues
        after ``after``; and the backend nodes' states. ``next`` is set when a limit left queues out."""
        _calls.check_limit(limit)
        stats: list[QueueStats] = []
        while True:
            want = _calls.remaining(limit, len(stats))
            page = await self._run(_calls.stats_page(after, want))
            stats += page.queues[:want]
            after = page.next
            if after is None or (want is not None and len(page.queues) >= want):
                return Overview(stats, page.nodes, after)

    async def redrive(self, queue: str) -> int:
        """Move the dead letters of ``queue`` back to it; returns how many."""
        return await self._run(_calls.redrive(queue))

    async def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return await self._run(_calls.health())

    async def ready(self) -> bool:
        """``GET /ready``: True when the server and its backend answer."""
        return await self._run(_calls.ready())

    # -- streaming and workers ------------------------------------------------------------------

    def stream(
        self,
        queue: str,
        *,
        lease: float | None = None,
        last_event_id: str | None = None,
        auto_ack: bool = True,
        reconnect: bool = True,
        reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 5.0,
        max_reconnects: int | None = None,
    ) -> AsyncStream:
        """Messages of ``queue`` as they arrive, over SSE: ``async with client.stream(q) as s: async for m in s``.
        See :class:`AsyncStream`."""
        return AsyncStream(
            self,
            queue,
            lease=lease,
            last_event_id=last_event_id,
            auto_ack=auto_ack,
            reconnect=reconnect,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            max_reconnects=max_reconnects,
        )

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        lease: float = 30.0,
        wait: float = 2.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_messages: int | None = None,
        stop: asyncio.Event | None = None,
        handle_signals: bool = True,
    ) -> ConsumeStats:
        """Run ``concurrency`` worker tasks until stopped; see :meth:`restmq.Client.consume`.

        ``handler`` may be a coroutine function or a plain function (a plain one runs in the event
        loop: keep it short, or hand the work to a thread yourself). SIGINT and SIGTERM set ``stop``
        when ``handle_signals`` and the loop runs in the main thread.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        worker = _AsyncWorker(self, queue, handler, lease, wait, backoff, max_backoff, max_messages, stop)
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, worker.stop.set)
                    installed.append(signum)
        try:
            await asyncio.gather(*(worker.run() for _ in range(concurrency)))
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
        return worker.stats


class _AsyncWorker:
    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        handler: Handler,
        lease: float,
        wait: float,
        backoff: float,
        max_backoff: float,
        max_messages: int | None,
        stop: asyncio.Event | None,
    ) -> None:
        self.client, self.queue, self.handler = client, queue, handler
        self.lease, self.wait, self.backoff, self.max_backoff = lease, wait, backoff, max_backoff
        self.max_messages = max_messages
        self.stop = stop or asyncio.Event()
        self.stats = ConsumeStats()
        self._started = 0

    def _claim(self) -> bool:
        if self.max_messages is not None and self._started >= self.max_messages:
            self.stop.set()
            return False
        self._started += 1
        if self.max_messages is not None and self._started >= self.max_messages:
            self.stop.set()  # this is the last one: nothing new is leased after it
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                message = await self.client.lease(self.queue, self.lease, wait=self.wait)
            except ClientError as exc:
                self.stats.errors += 1
                failures += 1
                delay = _calls.jittered_delay(failures, 0.5, 10.0)
                log.warning("consume %s: %s; retrying in %.1fs", self.queue, exc, delay)
                await self._pause(delay)
                continue
            failures = 0
            if message is None:
                continue
            if self.stop.is_set() or not self._claim():
                await self._settle(self.client.release(message), message)
                return
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        try:
            result = self.handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats.failed += 1
            delay = _calls.retry_delay(max(message.count, 1), self.backoff, self.max_backoff)
            log.exception("consume %s: handler failed on %s; released, retry in %gs", self.queue, message.key, delay)
            await self._settle(self.client.release(message, delay=delay), message)
        else:
            if await self._settle(self.client.ack(message), message):
                self.stats.handled += 1

    async def _settle(self, action: Awaitable[int], message: Message) -> bool:
        try:
            await action
            return True
        except ClientError as exc:
            self.stats.errors += 1
            log.warning("consume %s: settling %s failed: %s", self.queue, message.key, exc)
            return False


class AsyncStream:
    """Messages of one queue over SSE, reconnecting with ``Last-Event-ID``; the asyncio twin of
    :class:`restmq.client.sync.Stream` (same broadcast, resume and lease-mode auto-ack rules)::

        async with client.stream("jobs", lease=30) as stream:
            async for message in stream:
                await handle(message)    # acked once this body finishes without raising
    """

    def __init__(
        self,
        client: AsyncClient,
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
        self._lines: AsyncIterator[str] | None = None
        self._pending: Message | None = None
        self._closed = False
        self._failures = 0
        self._wake = asyncio.Event()

    @property
    def last_event_id(self) -> str | None:
        """The id of the newest event received (sent as ``Last-Event-ID`` on reconnect)."""
        return self._state.last_event_id

    @property
    def gaps(self) -> list[Gap]:
        return self._state.gaps

    @property
    def connects(self) -> int:
        return self._state.connects

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Message:
        await self._settle_pending(ack=True)
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._lines is None:
                await self._open()
                continue
            try:
                line = await anext(self._lines)
            except StopAsyncIteration:
                await self._lost("the server ended the stream", None)
                continue
            except httpx.TransportError as exc:
                await self._lost(str(exc) or type(exc).__name__, exc)
                continue
            except httpx.StreamError as exc:  # aclose() from another task ended the read
                await self._lost(str(exc) or type(exc).__name__, None)
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

    async def _open(self) -> None:
        if self._failures:
            delay = self._state.reconnect_delay(self._failures, self.reconnect_delay, self.max_reconnect_delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
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
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            await self._failed(from_transport(exc, self.client.url), exc)
            return
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            error = from_response(response)
            if response.status_code in RETRYABLE_STATUS:
                await self._failed(error, None)
                return
            await self.aclose()
            raise error
        self._response = response
        self._lines = response.aiter_lines()
        self._state.connects += 1
        if self._state.connects > 1:
            log.info("stream %s: reconnected (last event %s)", self.queue, self._state.last_event_id)

    async def _failed(self, error: ClientError, cause: BaseException | None) -> None:
        self._failures += 1
        if not self.reconnect or (self.max_reconnects is not None and self._failures > self.max_reconnects):
            await self.aclose()
            raise error from cause
        log.warning("stream %s: %s; reconnecting", self.queue, error)

    async def _lost(self, reason: str, exc: httpx.TransportError | None) -> None:
        await self._drop_connection()
        if self._closed:
            return
        self._failures += 1
        if not self.reconnect or (self.max_reconnects is not None and self._failures > self.max_reconnects):
            await self.aclose()
            if exc is not None:
                raise from_transport(exc, self.client.url) from exc
            return
        log.info("stream %s: connection lost (%s); reconnecting", self.queue, reason)

    async def _drop_connection(self) -> None:
        self._parser.reset()
        self._lines = None
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail again
                await response.aclose()

    async def _settle_pending(self, *, ack: bool) -> None:
        message, self._pending = self._pending, None
        if message is None:
            return
        try:
            if ack:
                await self.client.ack(message)
            else:
                await self.client.release(message)
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

    async def ack(self, message: Message | str, *, count: int | None = None) -> int:
        """Ack a message of this stream now (auto-ack then leaves it alone)."""
        self._forget(message)
        return await self.client.ack(message, count=count)

    async def release(self, message: Message | str, *, count: int | None = None, delay: float = 0.0) -> int:
        """Give a message of this stream back to the queue (after ``delay`` seconds)."""
        self._forget(message)
        return await self.client.release(message, count=count, delay=delay)

    async def extend(self, message: Message | str, lease: float, *, count: int | None = None) -> int:
        """Keep a message of this stream leased ``lease`` more seconds."""
        return await self.client.extend(message, lease, count=count)

    async def aclose(self) -> None:
        """Close the connection; a message still in hand is left to its lease."""
        self._closed = True
        self._wake.set()
        await self._drop_connection()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:  # ack before closing: closing hands unacked messages back to the queue
            await self._settle_pending(ack=True)
            await self.aclose()
        else:  # close first, so the released message cannot come back on this very connection
            await self.aclose()
            await self._settle_pending(ack=False)
