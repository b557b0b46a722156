"""One sharded pub/sub subscription per process, shared by every queue it listens to.

Queue events travel on shard channels (SSUBSCRIBE/SPUBLISH) so they follow their queue's slot
in Redis Cluster and survive failovers. When the connection drops, the listener reconnects with
backoff, subscribes again and reports queue "*" so waiters re-check what they may have missed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from restmq.core.store import EventHandler

log = logging.getLogger("restmq.events")


class EventListener:
    def __init__(
        self,
        make_pubsub: Callable[[], Any],
        channel_of: Callable[[str], str],
        node: str,
        read: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        self._make_pubsub = make_pubsub
        # How to read the next message (a cluster client reads shard channels differently).
        self._read_message = read or (lambda pubsub: pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0))
        self._channel_of = channel_of
        self._node = node
        self._queues: dict[str, str] = {}  # channel -> queue
        self._handler: EventHandler | None = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._broken = False  # a subscription failed on a live connection: reconnect and resubscribe all

    def on_event(self, handler: EventHandler) -> None:
        self._handler = handler

    @property
    def down(self) -> bool:
        """Subscribed to something, but not receiving now: an event published now would be missed."""
        return self._task is not None and (self._pubsub is None or self._broken)

    async def subscribe(self, queue: str) -> None:
        channel = self._channel_of(queue)
        async with self._lock:
            if channel in self._queues:
                return
            self._queues[channel] = queue
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name=f"restmq-events-{self._node}")
            if self._pubsub is not None:
                try:
                    await self._pubsub.ssubscribe(channel)
                except Exception as exc:  # the reader loop reconnects and resubscribes everything
                    log.warning("subscribe to %s on %s failed: %s", queue, self._node, exc)
                    self._broken = True
            self._wanted.set()

    async def unsubscribe(self, queue: str) -> None:
        channel = self._channel_of(queue)
        async with self._lock:
            if self._queues.pop(channel, None) is None:
                return
            if self._pubsub is not None:
                try:
                    await self._pubsub.sunsubscribe(channel)
                except Exception as exc:
                    log.debug("unsubscribe from %s on %s failed: %s", queue, self._node, exc)

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            while not task.done():  # again and again: Python 3.11's wait_for can swallow a cancel
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if not task.cancelled() and task.exception() is not None:
                log.debug("event reader for %s ended with %r", self._node, task.exception())
        await self._drop_pubsub()

    async def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            try:
                await pubsub.aclose()
            except Exception:
                log.debug("closing pubsub on %s failed", self._node, exc_info=True)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._make_pubsub()
            try:
                if self._queues:
                    await pubsub.ssubscribe(*self._queues)
            except BaseException:
                await pubsub.aclose()  # its connections would leak
                raise
            self._pubsub, self._broken = pubsub, False

    async def _run(self) -> None:
        backoff = 0.05
        first = True
        while True:
            try:
                await self._connect()
                if not first:
                    log.info("event subscription to %s restored", self._node)
                # Events may have been missed (stream dispatchers take nothing while the subscription is down).
                # Not "reconnect": dispatchers read an event starting with "r" as roundrobin assignments.
                await self._emit("*", "missed")
                first, backoff = False, 0.05
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event subscription to %s lost (%s); retrying in %.2fs", self._node, exc, backoff)
                await self._drop_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _read(self) -> None:
        while True:
            if self._broken:
                raise ConnectionError("a subscription failed")
            if not self._queues:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            message = await self._read_message(self._pubsub)
            if message is None or message.get("type") not in ("message", "smessage"):
                continue
            queue = self._queues.get(message["channel"])
            if queue is not None:
                await self._emit(queue, message["data"])

    async def _emit(self, queue: str, event: str) -> None:
        if self._handler is None:
            return
        try:
            result = self._handler(queue, event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("event handler failed for %s", queue)
