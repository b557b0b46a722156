"""Process-local fan-in of queue events: who in this process waits on which queue.

Long-polls and streaming dispatchers register here; the first listener of a queue subscribes
the process to the queue's event channel, and the subscription lingers a little after the
last one leaves so that back-to-back long-polls do not churn subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from restmq.storage.base import Store

log = logging.getLogger("restmq.waiters")

Listener = Callable[[str], None]


class Signal:
    """A wake-up flag for one waiter; set by any event on its queue."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __call__(self, event: str) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for an event since the last wait; True if one came."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class Waiters:
    def __init__(self, store: Store, *, linger: float = 10.0) -> None:
        self._store = store
        self._linger = linger
        self._listeners: dict[str, set[Listener]] = {}
        self._unsubscribe_timers: dict[str, asyncio.TimerHandle] = {}
        store.on_event(self._dispatch)

    def _dispatch(self, queue: str, event: str) -> None:
        targets = self._listeners.values() if queue == "*" else [self._listeners.get(queue, set())]
        for listeners in list(targets):
            for listener in list(listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("listener for %s failed", queue)

    async def add(self, queue: str, listener: Listener) -> None:
        timer = self._unsubscribe_timers.pop(queue, None)
        if timer is not None:
            timer.cancel()
        listeners = self._listeners.setdefault(queue, set())
        listeners.add(listener)
        if len(listeners) == 1 and timer is None:
            await self._store.subscribe(queue)

    def remove(self, queue: str, listener: Listener) -> None:
        listeners = self._listeners.get(queue)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[queue]
            loop = asyncio.get_running_loop()
            self._unsubscribe_timers[queue] = loop.call_later(self._linger, self._expire, queue)

    def _expire(self, queue: str) -> None:
        self._unsubscribe_timers.pop(queue, None)
        if queue not in self._listeners:
            asyncio.get_running_loop().create_task(self._store.unsubscribe(queue))

    @contextlib.asynccontextmanager
    async def watch(self, queue: str) -> AsyncIterator[Signal]:
        signal = Signal()
        await self.add(queue, signal)
        try:
            yield signal
        finally:
            self.remove(queue, signal)

    def close(self) -> None:
        for timer in self._unsubscribe_timers.values():
            timer.cancel()
        self._unsubscribe_timers.clear()
