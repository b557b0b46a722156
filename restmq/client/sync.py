"""The blocking RestMQ client, :class:`Client`: one method per HTTP call, :meth:`Client.stream` and
:meth:`Client.consume`.

GENERATED from restmq/client/aio.py by scripts/generate-sync-client: edit that file, then run the script.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import httpx

from restmq.client import _calls, _sync_flavor
from restmq.client._sync_flavor import Handler
from restmq.client._sync_stream import Stream
from restmq.client._sync_worker import Worker
from restmq.client.errors import from_transport
from restmq.client.models import ConsumeStats, Control, Message, Overview, QueueStats

__all__ = ["Client", "Stream"]

T = TypeVar("T")


class Client:
    """A client for one RestMQ server (or load balancer). The blocking one is safe to share between threads;
    create the asyncio one inside the event loop that uses it.

    ``url`` defaults to ``$RESTMQ_URL``, then ``http://127.0.0.1:8888``; ``token`` to ``$RESTMQ_TOKEN``
    (sent as ``Authorization: Bearer <token>``). Connections are pooled (``max_connections``);
    ``timeout`` bounds every request (a long-poll's ``wait`` is added to it), ``connect_timeout`` the
    connect, ``stream_timeout`` the silence a stream tolerates (the server sends heartbeats every 15 s).

    Every method raises a :class:`~restmq.client.errors.ClientError`: an
    :class:`~restmq.client.errors.APIError` subclass carrying the server's ``code`` when the server
    refused, a :class:`~restmq.client.errors.TransportError` when no answer came.

    Use it as a context manager (``with Client() as client: ...``), or call :meth:`close` when done.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _calls.resolve_url(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.stream_timeout = stream_timeout
        self._http = httpx.Client(
            base_url=self.url,
            headers=_calls.base_headers(_calls.resolve_token(token), headers),
            timeout=_calls.timeout(timeout, connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=verify,
            transport=transport,
        )

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _run(self, call: _calls.Call[T]) -> T:
        try:
            response = self._http.request(
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

    def add(
        self,
        queue: str,
        value: object,
        *,
        delay: float | None = None,
        ttl: float | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        group: str | None = None,
    ) -> str:
        """Add one message; returns its key ``<queue>:<n>``.

        ``value``: a str is sent as is, bytes as UTF-8, anything else as compact JSON text.
        ``delay``: seconds it stays invisible. ``ttl``: seconds it may wait before it is dropped.
        ``priority``: 0-9, higher first. ``idempotency_key``: a retry with the same key within the
        server's window (5 min) returns the first key and adds nothing. ``group``: a message group id
        (delivered in the order added, one of the group in flight at a time; not with priority or delay).
        """
        return self._run(
            _calls.add(
                queue, value, delay=delay, ttl=ttl, priority=priority, idempotency_key=idempotency_key, group=group
            )
        )

    def add_batch(
        self,
        queue: str,
        values: Iterable[object],
        *,
        delay: float | None = None,
        ttl: float | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        group: str | None = None,
    ) -> list[str]:
        """Add many messages in one request, all or nothing; returns their keys in order.

        The server caps a batch (``--max-batch``, 10,000 by default: 413 ``PAYLOAD_TOO_LARGE`` above);
        split bigger inputs yourself. An empty ``values`` adds nothing and returns ``[]``. ``group``: every
        message of the batch joins that message group, in batch order.
        """
        call = _calls.add_batch(
            queue, values, delay=delay, ttl=ttl, priority=priority, idempotency_key=idempotency_key, group=group
        )
        if call.content == b"[]":
            return []
        return self._run(call)

    # -- consuming ------------------------------------------------------------------------------

    @overload
    def get(self, queue: str, *, wait: float = 0.0, lease: float | None = None) -> Message | None: ...
    @overload
    def get(self, queue: str, *, count: int, wait: float = 0.0, lease: float | None = None) -> list[Message]: ...
    def get(
        self, queue: str, *, count: int | None = None, wait: float = 0.0, lease: float | None = None
    ) -> Message | None | list[Message]:
        """``GET /q/<queue>``: the oldest ready message, or ``None`` when none is (or the queue is stopped).

        Without ``lease`` the message is removed as it is delivered (the original RestMQ pop). With
        ``lease=S`` it is hidden for S seconds instead: :meth:`ack` it, :meth:`release` it or
        :meth:`extend` it; unsettled, it comes back with its ``count`` raised. ``wait=S`` long-polls up
        to S seconds (at most 60). With ``count=N`` the answer is a list of up to N messages.
        """
        messages = self._run(_calls.get(queue, count=count, wait=wait, lease=lease))
        if count is not None:
            return messages
        return messages[0] if messages else None

    @overload
    def take(self, queue: str, *, wait: float = 0.0) -> Message | None: ...
    @overload
    def take(self, queue: str, *, count: int, wait: float = 0.0) -> list[Message]: ...
    def take(self, queue: str, *, count: int | None = None, wait: float = 0.0) -> Message | None | list[Message]:
        """Destructive read: :meth:`get` without a lease (the message is gone once returned)."""
        messages = self._run(_calls.get(queue, count=count, wait=wait, lease=None))
        if count is not None:
            return messages
        return messages[0] if messages else None

    @overload
    def lease(
        self,
        queue: str,
        seconds: float,
        *,
        wait: float = 0.0,
        ack: Sequence[Message | str] = (),
        acked: dict[str, str] | None = None,
    ) -> Message | None: ...
    @overload
    def lease(
        self,
        queue: str,
        seconds: float,
        *,
        count: int,
        wait: float = 0.0,
        ack: Sequence[Message | str] = (),
        acked: dict[str, str] | None = None,
    ) -> list[Message]: ...
    def lease(
        self,
        queue: str,
        seconds: float,
        *,
        count: int | None = None,
        wait: float = 0.0,
        ack: Sequence[Message | str] = (),
        acked: dict[str, str] | None = None,
    ) -> Message | None | list[Message]:
        """:meth:`get` with ``lease=seconds``: at-least-once delivery, settle with :meth:`ack`.

        ``ack`` acknowledges messages of this queue in the same request, before the lease (``GET
        /q/<queue>?lease=S&ack=<key>``: one round trip instead of an :meth:`ack` each). An ack that fails never
        keeps the lease from running, nor the lease that finds nothing the acks: pass a dict as ``acked`` to get
        each ack's outcome by key, ``"ok"`` or the error code its :meth:`ack` would raise with (``LEASE_EXPIRED``,
        ``LEASE_STALE``, ``MESSAGE_NOT_FOUND``). A :class:`Message` is acked only if not delivered again since.
        """
        call = _calls.get(queue, count=count, wait=wait, lease=seconds, ack=ack, acked=acked)
        messages = self._run(call)
        if count is not None:
            return messages
        return messages[0] if messages else None

    def soft_get(self, queue: str) -> Message | None:
        """The original soft get (JSON protocol ``get``): the oldest message stays queued and its
        ``count`` goes up by one. ``None`` when the queue is empty or stopped."""
        return self._run(_calls.soft_get(queue))

    def delete_message(self, key: str) -> bool:
        """Remove the message ``key`` wherever it is (ready, delayed or leased; JSON protocol ``del``).
        True when it existed."""
        return self._run(_calls.delete_message(key))

    def ack(self, message: Message | str, *, count: int | None = None) -> int:
        """Acknowledge a leased message: it is done and removed. Returns its delivery count.

        ``message`` is a :class:`Message` (its ``count`` is sent, so a redelivered message is never
        acked by an old delivery: :class:`~restmq.client.errors.LeaseStale`) or a key with an optional
        ``count``. Raises :class:`~restmq.client.errors.LeaseExpired` when the lease ran out first and
        :class:`~restmq.client.errors.MessageNotFound` for an unknown key.
        """
        return self._run(_calls.ack(message, count=count))

    def release(self, message: Message | str, *, count: int | None = None, delay: float = 0.0) -> int:
        """Give a leased message back to the head of its queue (after ``delay`` seconds, if given)."""
        return self._run(_calls.release(message, count=count, delay=delay))

    def extend(self, message: Message | str, lease: float, *, count: int | None = None) -> int:
        """Keep a leased message ``lease`` more seconds from now."""
        return self._run(_calls.extend(message, lease, count=count))

    # -- queues, settings, statistics ----------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Remove every message of the queue (ready, delayed, leased); returns how many. Settings stay."""
        return self._run(_calls.purge(queue))

    def queues(self, *, limit: int | None = None, after: str | None = None) -> list[str]:
        """The names of the queues that hold messages, in name order: every page of ``GET /q/`` in turn, or the
        first ``limit`` names (after ``after``, when given)."""
        _calls.check_limit(limit)
        names: list[str] = []
        while (want := _calls.remaining(limit, len(names))) is None or want > 0:
            found, after = self._run(_calls.queue_page(after, want))
            names += found[:want]
            if after is None:
                break
        return names

    def policy(self, queue: str) -> str:
        """The streaming policy: ``broadcast`` or ``roundrobin``."""
        return self._run(_calls.policy(queue))

    def set_policy(self, queue: str, policy: str) -> str:
        """Set the streaming policy (``broadcast`` or ``roundrobin``); returns it."""
        return self._run(_calls.policy(queue, policy))

    def control(self, queue: str) -> Control:
        """Flow status (``start``/``stop``) and ``max_deliveries`` of the queue."""
        return self._run(_calls.control(queue))

    def set_control(self, queue: str, *, status: str | None = None, max_deliveries: int | None = None) -> Control:
        """Start or stop delivery (``status``), and/or set ``max_deliveries`` (0 = unlimited)."""
        if status is None and max_deliveries is None:
            raise ValueError("give status and/or max_deliveries")
        return self._run(_calls.control(queue, status=status, max_deliveries=max_deliveries))

    def stats(self, queue: str) -> QueueStats:
        """Statistics of one queue."""
        return self._run(_calls.stats(queue))

    def stats_all(self, *, limit: int | None = None, after: str | None = None) -> Overview:
        """Statistics of every queue (every page of ``GET /stats/`` in turn), or of the first ``limit`` queues
        after ``after``; and the backend nodes' states. ``next`` is set when a limit left queues out."""
        _calls.check_limit(limit)
        stats: list[QueueStats] = []
        while True:
            want = _calls.remaining(limit, len(stats))
            page = self._run(_calls.stats_page(after, want))
            stats += page.queues[:want]
            after = page.next
            if after is None or (want is not None and len(page.queues) >= want):
                return Overview(stats, page.nodes, after)

    def redrive(self, queue: str) -> int:
        """Move the dead letters of ``queue`` (``<queue>:dead``; either name works) back to it; returns how many."""
        return self._run(_calls.redrive(queue))

    def health(self) -> dict[str, Any]:
        """``GET /health``: the server process is up."""
        return self._run(_calls.health())

    def ready(self) -> bool:
        """``GET /ready``: True when the server and its backend answer."""
        return self._run(_calls.ready())

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
    ) -> Stream:
        """Messages of ``queue`` as they arrive, over Server-Sent Events. See :class:`Stream`."""
        return Stream(
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

    def consume(
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
        stop: threading.Event | None = None,
        handle_signals: bool = True,
    ) -> ConsumeStats:
        """Run a worker loop until stopped; returns what it did.

        ``concurrency`` workers (threads of the blocking client, tasks of the asyncio one) each lease
        one message (``lease`` seconds; a long-poll of up to ``wait`` seconds when the queue is idle),
        call ``handler(message)``, and ack it when the handler returns: on the worker's next lease, in the same
        request (``ack=``), with a plain :meth:`ack` for the last ones when it stops. The asyncio client
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
        worker = Worker(self, queue, handler, lease, wait, backoff, max_backoff, max_messages, stop)
        _sync_flavor.run_workers(worker.run, worker.stop, queue, concurrency, handle_signals)
        return worker.stats
