"""The asyncio RestMQ client: :class:`AsyncClient`, its SSE :class:`AsyncStream` and the :meth:`AsyncClient.consume`
worker loop.

This is the one hand-written client: restmq/client/sync.py (:class:`Client`, :class:`Stream`) is generated from it
by scripts/generate-sync-client (unasync: ``async``/``await`` dropped, ``AsyncClient`` → ``Client``, ``aclose`` →
``close``, ...). What differs beyond names (waiting, handlers, worker tasks or threads) lives in ``_aio_flavor`` and
its twin ``_sync_flavor``. Edit this file, then run the script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from threading import Lock
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from restmq.client import _aio_flavor, _calls
from restmq.client._aio_flavor import Handler
from restmq.client._stream import Gap, SSEParser, StreamState
from restmq.client.errors import ClientError, ConflictError, NotFoundError, from_response, from_transport
from restmq.client.models import ConsumeStats, Control, Message, Overview, QueueStats

T = TypeVar("T")
log = logging.getLogger("restmq.client")

RETRYABLE_STATUS = (502, 503, 504)


class AsyncClient:
    """A client for one RestMQ server (or load balancer). The blocking one is safe to share between threads;
    create the asyncio one inside the event loop that uses it.

    ``url`` defaults to ``$RESTMQ_URL``, then ``http://127.0.0.1:8888``; ``token`` to ``$RESTMQ_TOKEN``
    (sent as ``Authorization: Bearer <token>``). Connections are pooled (``max_connections``);
    ``timeout`` bounds every request (a long-poll's ``wait`` is added to it), ``connect_timeout`` the
    connect, ``stream_timeout`` the silence a stream tolerates (the server sends heartbeats every 15 s).

    Every method raises a :class:`~restmq.client.errors.ClientError`: an
    :class:`~restmq.client.errors.APIError` subclass carrying the server's ``code`` when the server
    refused, a :class:`~restmq.client.errors.TransportError` when no answer came.

    Use it as a context manager (``async with AsyncClient() as client: ...``), or call :meth:`aclose` when done.
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
        return f"{type(self).__name__}({self.url!r})"

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
        """Add one message; returns its key ``<queue>:<n>``.

        ``value``: a str is sent as is, bytes as UTF-8, anything else as compact JSON text.
        ``delay``: seconds it stays invisible. ``ttl``: seconds it may wait before it is dropped.
        ``priority``: 0-9, higher first. ``idempotency_key``: a retry with the same key within the
        server's window (5 min) returns the first key and adds nothing.
        """
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
        """Add many messages in one request, all or nothing; returns their keys in order.

        The server caps a batch (``--max-batch``, 10,000 by default: 413 ``PAYLOAD_TOO_LARGE`` above);
        split bigger inputs yourself. An empty ``values`` adds nothing and returns ``[]``.
        """
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
        """``GET /q/<queue>``: the oldest ready message, or ``None`` when none is (or the queue is stopped).

        Without ``lease`` the message is removed as it is delivered (the original RestMQ pop). With
        ``lease=S`` it is hidden for S seconds instead: :meth:`ack` it, :meth:`release` it or
        :meth:`extend` it; unsettled, it comes back with its ``count`` raised. ``wait=S`` long-polls up
        to S seconds (at most 60). With ``count=N`` the answer is a list of up to N messages.
        """
        messages = await self._run(_calls.get(queue, count=count, wait=wait, lease=lease))
        if count is not None:
            return messages
        return messages[0] if messages else None

    @overload
    async def take(self, queue: str, *, wait: float = 0.0) -> Message | None: ...
    @overload
    async def take(self, queue: str, *, count: int, wait: float = 0.0) -> list[Message]: ...
    async def take(self, queue: str, *, count: int | None = None, wait: float = 0.0) -> Message | None | list[Message]:
        """Destructive read: :meth:`get` without a lease (the message is gone once returned)."""
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
        """:meth:`get` with ``lease=seconds``: at-least-once delivery, settle with :meth:`ack`."""
        messages = await self._run(_calls.get(queue, count=count, wait=wait, lease=seconds))
        if count is not None:
            return messages
        return messages[0] if messages else None

    async def soft_get(self, queue: str) -> Message | None:
        """The original soft get (JSON protocol ``get``): the oldest message stays queued and its
        ``count`` goes up by one. ``None`` when the queue is empty or stopped."""
        return await self._run(_calls.soft_get(queue))

    async def delete_message(self, key: str) -> bool:
        """Remove the message ``key`` wherever it is (ready, delayed or leased; JSON protocol ``del``).
        True when it existed."""
        return await self._run(_calls.delete_message(key))

    async def ack(self, message: Message | str, *, count: int | None = None) -> int:
        """Acknowledge a leased message: it is done and removed. Returns its delivery count.

        ``message`` is a :class:`Message` (its ``count`` is sent, so a redelivered message is never
        acked by an old delivery: :class:`~restmq.client.errors.LeaseStale`) or a key with an optional
        ``count``. Raises :class:`~restmq.client.errors.LeaseExpired` when the lease ran out first and
        :class:`~restmq.client.errors.MessageNotFound` for an unknown key.
        """
        return await self._run(_calls.ack(message, count=count))

    async def release(self, message: Message | str, *, count: int | None = None, delay: float = 0.0) -> int:
        """Give a leased message back to the head of its queue (after ``delay`` seconds, if given)."""
        return await self._run(_calls.release(message, count=count, delay=delay))

    async def extend(self, message: Message | str, lease: float, *, count: int | None = None) -> int:
        """Keep a leased message ``lease`` more seconds from now."""
        return await self._run(_calls.extend(message, lease, count=count))

    # -- queues, settings, statistics ----------------------------------------------------------

    async def purge(self, queue: str) -> int:
        """Remove every message of the queue (ready, delayed, leased); returns how many. Settings stay."""
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
        """Set the streaming policy (``broadcast`` or ``roundrobin``); returns it."""
        return await self._run(_calls.policy(queue, policy))

    async def control(self, queue: str) -> Control:
        """Flow status (``start``/``stop``) and ``max_deliveries`` of the queue."""
        return await self._run(_calls.control(queue))

    async def set_control(self, queue: str, *, status: str | None = None, max_deliveries: int | None = None) -> Control:
        """Start or stop delivery (``status``), and/or set ``max_deliveries`` (0 = unlimited)."""
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
        """Move the dead letters of ``queue`` (``<queue>:dead``; either name works) back to it; returns how many."""
        return await self._run(_calls.redrive(queue))

    async def health(self) -> dict[str, Any]:
        """``GET /health``: the server process is up."""
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
        """Messages of ``queue`` as they arrive, over Server-Sent Events. See :class:`AsyncStream`."""
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
        """Run a worker loop until stopped; returns what it did.

        ``concurrency`` workers (threads of the blocking client, tasks of the asyncio one) each lease
        one message (``lease`` seconds; a long-poll of up to ``wait`` seconds when the queue is idle),
        call ``handler(message)``, and :meth:`ack` it when the handler returns. The asyncio client
        takes a coroutine function or a plain one (a plain one runs in the event loop: keep it short,
        or hand the work to a thread yourself). When the handler raises, the exception is logged and
        the message is released with a delay of ``backoff * 2**(count-1)`` seconds (at most
        ``max_backoff``), so a failing message is retried later (and dead-lettered after the queue's
        ``max_deliveries``). Server or connection errors are logged and retried with backoff; the loop
        keeps going.

        It stops gracefully when ``stop`` is set, after ``max_messages`` deliveries (handled or
        failed), on Ctrl-C, or on SIGTERM (``handle_signals``, main thread only): handlers running
        then finish and are acked, and nothing new is leased. The lease must outlast the handler:
        call :meth:`extend` from the handler for long jobs.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        worker = _AsyncWorker(self, queue, handler, lease, wait, backoff, max_backoff, max_messages, stop)
        await _aio_flavor.run_workers(worker.run, worker.stop, queue, concurrency, handle_signals)
        return worker.stats


class _AsyncWorker:
    """The shared state of one consume() run; each worker runs :meth:`run`."""

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
        self._lock = Lock()  # the blocking client's workers are threads; never held across an await
        self._started = 0

    def _claim(self) -> bool:
        with self._lock:
            if self.max_messages is not None and self._started >= self.max_messages:
                self.stop.set()
                return False
            self._started += 1
            if self.max_messages is not None and self._started >= self.max_messages:
                self.stop.set()  # this is the last one: nothing new is leased after it
            return True

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    async def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                message = await self.client.lease(self.queue, self.lease, wait=self.wait)
            except ClientError as exc:
                self._count("errors")
                failures += 1
                delay = _calls.jittered_delay(failures, 0.5, 10.0)
                log.warning("consume %s: %s; retrying in %.1fs", self.queue, exc, delay)
                await _aio_flavor.wait_event(self.stop, delay)
                continue
            failures = 0
            if message is None:
                continue
            if self.stop.is_set() or not self._claim():
                await self._settle(message, release_after=0.0)
                return
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        try:
            await _aio_flavor.call_handler(self.handler, message)
        except Exception:
            self._count("failed")
            delay = _calls.retry_delay(max(message.count, 1), self.backoff, self.max_backoff)
            log.exception("consume %s: handler failed on %s; released, retry in %gs", self.queue, message.key, delay)
            await self._settle(message, release_after=delay)
        else:
            if await self._settle(message):
                self._count("handled")

    async def _settle(self, message: Message, *, release_after: float | None = None) -> bool:
        """Ack `message`, or release it to come back after `release_after` seconds; False when that failed."""
        try:
            if release_after is None:
                await self.client.ack(message)
            else:
                await self.client.release(message, delay=release_after)
            return True
        except ClientError as exc:
            self._count("errors")
            log.warning("consume %s: settling %s failed: %s", self.queue, message.key, exc)
            return False


class AsyncStream:
    """Messages of one queue as the server pushes them (SSE), reconnecting by itself.

    Iterate it; use it as a context manager so the connection closes::

        async with client.stream("news") as stream:
            async for message in stream:
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

        async with client.stream("jobs", lease=30) as stream:
            async for message in stream:
                await handle(message)      # acked once this body finishes without raising

    Settle a message yourself with :meth:`ack`, :meth:`release` or :meth:`extend` of the stream (not
    of the client), and auto-ack leaves it alone. A message whose lease ran out (or that came back
    when the connection dropped) is redelivered with a higher ``count``; its late auto-ack is logged.
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
            except httpx.StreamError as exc:  # closing from another task or thread ended the read
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
            await _aio_flavor.wait_event(self._wake, delay)
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

    def _gives_up(self) -> bool:
        """Count one more failure in a row; True when no reconnect is left."""
        self._failures += 1
        return not self.reconnect or (self.max_reconnects is not None and self._failures > self.max_reconnects)

    async def _failed(self, error: ClientError, cause: BaseException | None) -> None:
        if self._gives_up():
            await self.aclose()
            raise error from cause
        log.warning("stream %s: %s; reconnecting", self.queue, error)

    async def _lost(self, reason: str, exc: httpx.TransportError | None) -> None:
        await self._drop_connection()
        if self._closed:
            return
        if self._gives_up():
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
            with contextlib.suppress(Exception):  # closing a broken connection may fail again; it is gone anyway
                await response.aclose()

    # -- settling ------------------------------------------------------------------------------

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

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection; a message still in hand is left to its lease (see ``__aexit__``).

        Safe to call from another thread or task: a blocked iteration ends.
        """
        self._closed = True
        self._wake.set()
        _aio_flavor.interrupt_read(self._response)
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
