"""Process-local fan-in of queue events: who in this process waits on which queue.

Long-polls and streaming dispatchers register here; the first listener of a queue subscribes
the process to the queue's event channel, and the subscription lingers a little after the
last one leaves so that back-to-back long-polls do not churn subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable

from restmq.core.store import Store
from restmq.errors import BackendUnavailable

log = logging.getLogger("restmq.waiters")

Listener = Callable[[str], None]
TAKEN = ("b", "r", "sync:")  # events that make no message ready: broadcast, roundrobin, echo


class Line:
    """The long-polls of one queue in this process, woken first come first served.

    An event for N new messages ("add:N") wakes N waiters rather than every one (no thundering
    herd); any other event ("add" after a sweep or a redrive, "settings", a reconnect) wakes all.
    A waiter takes a ticket before it looks at the queue, so an event that arrives while it looks
    is not lost; a ticket woken for nothing passes its wake on to the next waiter.
    """

    def __init__(self) -> None:
        self._tickets: deque[asyncio.Future[bool]] = deque()
        self._stale = 0  # tickets left in the line that nobody waits on any more
        self.members = 0  # long-polls in the line (see Waiters.line)
        self.parked = 0  # long-polls waiting for a wake right now (read by /metrics)

    def __call__(self, event: str) -> None:
        if event.startswith(TAKEN):  # messages went to streams, or an echo: nothing new to take
            return
        count = event[4:] if event.startswith("add:") else ""
        self.wake(int(count) if count.isdigit() else len(self._tickets))

    def wake(self, n: int) -> None:
        while n > 0 and self._tickets:
            ticket = self._tickets.popleft()
            if not ticket.done():
                ticket.set_result(True)
                n -= 1

    def ticket(self) -> asyncio.Future[bool]:
        ticket = asyncio.get_running_loop().create_future()
        self._tickets.append(ticket)
        return ticket

    async def wait(self, ticket: asyncio.Future[bool], timeout: float) -> bool:
        """True when `ticket` was woken by an event, False when `timeout` passed first."""
        timer = asyncio.get_running_loop().call_later(timeout, _expire, ticket)
        self.parked += 1
        try:
            woken = await ticket
        except BaseException:  # cancelled: a wake it got goes on
            self.done(ticket)
            raise
        finally:
            self.parked -= 1
            timer.cancel()
        if not woken:
            self._left_behind()
        return woken

    def done(self, ticket: asyncio.Future[bool]) -> None:
        """Give back a ticket nobody will wait on: a wake it got goes to the next waiter."""
        if not ticket.done():
            ticket.cancel()
        if ticket.cancelled() or not ticket.result():
            self._left_behind()
        else:
            self.wake(1)

    def _left_behind(self) -> None:
        """A finished ticket stays in the line (wake() skips it) until enough of them pile up."""
        self._stale += 1
        if self._stale > 64 and self._stale > len(self._tickets) // 2:
            self._tickets = deque(t for t in self._tickets if not t.done())
            self._stale = 0


def _expire(ticket: asyncio.Future[bool]) -> None:
    if not ticket.done():
        ticket.set_result(False)


class Waiters:
    def __init__(self, store: Store, *, linger: float = 10.0) -> None:
        self._store = store
        self._linger = linger
        self._listeners: dict[str, set[Listener]] = {}
        self._unsubscribe_timers: dict[str, asyncio.TimerHandle] = {}
        self._lines: dict[str, Line] = {}  # queue -> its long-polls in this process
        self._confirming: dict[str, asyncio.Future[None]] = {}  # queue -> done once its events arrive
        self._echoes: dict[str, asyncio.Future[None]] = {}  # sync token -> done once it came back
        store.on_event(self._dispatch)

    def _dispatch(self, queue: str, event: str) -> None:
        if event.startswith("sync:") and (echo := self._echoes.get(event)) is not None and not echo.done():
            echo.set_result(None)
        targets = self._listeners.values() if queue == "*" else [self._listeners.get(queue, set())]
        for listeners in list(targets):
            for listener in list(listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("listener for %s failed", queue)

    async def add(self, queue: str, listener: Listener) -> None:
        """Listen to `queue`'s events; on return this process receives them."""
        timer = self._unsubscribe_timers.pop(queue, None)
        if timer is not None:
            timer.cancel()
        listeners = self._listeners.setdefault(queue, set())
        listeners.add(listener)
        if len(listeners) == 1 and timer is None:
            confirmed = self._confirming[queue] = asyncio.get_running_loop().create_future()
            try:
                await self._store.subscribe(queue)
                await self.confirm(queue)
            finally:
                del self._confirming[queue]
                confirmed.set_result(None)
        elif (confirming := self._confirming.get(queue)) is not None:
            await asyncio.shield(confirming)

    async def confirm(self, queue: str, timeout: float = 2.0) -> None:
        """Return once an event published on `queue` now has come back to this process: after a new
        subscription (subscribing only sends the request), or as a barrier behind every event
        published before. Publishes a token until it comes back, for at most `timeout` seconds."""
        token = f"sync:{os.urandom(8).hex()}"
        loop = asyncio.get_running_loop()
        echo = self._echoes[token] = loop.create_future()
        deadline = loop.time() + timeout
        try:
            while not echo.done():
                if loop.time() >= deadline:
                    log.warning("events of %s not confirmed after %gs", queue, timeout)
                    return
                await self._store.publish(queue, token)
                await asyncio.wait({echo}, timeout=0.05)
        except BackendUnavailable as exc:
            log.warning("events of %s not confirmed: %s", queue, exc.message)
        finally:
            del self._echoes[token]

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
    async def line(self, queue: str) -> AsyncIterator[Line]:
        """Join the long-polls of `queue` in this process (subscribing the process if needed)."""
        line = self._lines.get(queue)
        first = line is None
        if line is None:
            line = self._lines[queue] = Line()
        line.members += 1
        try:
            if first:
                await self.add(queue, line)
            elif (confirming := self._confirming.get(queue)) is not None:
                await asyncio.shield(confirming)
            yield line
        finally:
            line.members -= 1
            if not line.members:
                del self._lines[queue]
                self.remove(queue, line)

    def parked(self) -> int:
        """Long-polls of this process waiting for a wake right now (an add from now on reaches them)."""
        return sum(line.parked for line in self._lines.values())

    def close(self) -> None:
        for timer in self._unsubscribe_timers.values():
            timer.cancel()
        self._unsubscribe_timers.clear()
