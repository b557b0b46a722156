"""Push delivery in one server process: every process runs one PushRunner (started by the app's lifespan when
--push-allow is set), and they share the work through the backend.

Per subscription, a feed loop reserves delivery slots (push_reserve: max_in_flight and rate hold over every
process), leases that many messages (a lease like any consumer's: timeout + LEASE_MARGIN), and starts one delivery
task per message. A delivery ends with an ack (2xx), a release after a backoff with full jitter, or, once the
message has been delivered max_attempts times, a move to `<queue>:dead`; a 410 pauses the subscription. A process
killed mid-delivery loses nothing: its leases and slots expire and another process delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from typing import Protocol

from restmq.core.model import Message, PopMode, SettleAction, SettleOutcome
from restmq.core.push import Outcome, PushStore, Subscription, from_fields
from restmq.core.store import Store
from restmq.core.waiters import TAKEN, Waiters
from restmq.errors import BackendUnavailable
from restmq.push.allow import AllowList
from restmq.push.sender import Attempt, Sender

log = logging.getLogger("restmq.push")

LEASE_MARGIN = 5.0  # seconds a lease outlasts the delivery's timeout: the ack arrives before it expires
REFRESH = 1.0  # seconds between reads of the subscription list (other processes' changes)
IDLE = 1.0  # seconds a feed waits for an event before it looks again (delayed retries becoming due)
FULL = 0.2  # seconds a feed waits when another process holds every slot
BATCH = 50  # slots reserved at most per call


class PushBackend(Store, PushStore, Protocol):
    """A Store that keeps push subscriptions too (every storage mode's store does)."""


class PushRunner:
    def __init__(self, store: PushBackend, waiters: Waiters, allow: AllowList) -> None:
        self.store = store
        self.waiters = waiters
        self.sender = Sender(allow)
        self.owner = uuid.uuid4().hex[:12]  # slot ids of this process
        self.subscriptions: dict[str, Subscription] = {}
        self.counts: Counter[str] = Counter()  # deliveries by outcome, for /metrics
        self._feeds: dict[str, asyncio.Task[None]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._holding: dict[asyncio.Task[None], tuple[Message, str]] = {}  # delivery -> its message and slot
        self._changed = asyncio.Event()
        self._wakes: dict[str, asyncio.Event] = {}  # queue -> its feed's wake-up: events, and a delivery's end
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._watch = asyncio.create_task(self._watch_list(), name="restmq-push")

    def in_flight(self) -> int:
        return len(self._deliveries)

    def changed(self, queue: str, saved: Subscription | None) -> None:
        """A subscription was saved (or removed: None) through this process: this process uses it at once, and
        reads the list again now (other processes see the change at their next read, within REFRESH)."""
        if saved is None:
            self.subscriptions.pop(queue, None)
        else:
            self.subscriptions[queue] = saved
        self._changed.set()

    async def close(self) -> None:
        """Stop; the messages of deliveries cut short go back to their queues now rather than when their leases
        run out (a stop is not a crash: the next process need not wait)."""
        held = list(self._holding.values())
        tasks = [t for t in (self._watch, *self._feeds.values(), *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(BackendUnavailable, TimeoutError):
            async with asyncio.timeout(2):
                for message, slot in held:
                    await self.store.settle(
                        message.queue, SettleAction.RELEASE, message.n, expected_count=message.count
                    )
                    await self.store.settle_push(message.queue, [slot], 0, Outcome())
        await self.sender.close()

    async def _watch_list(self) -> None:
        while True:
            self._changed.clear()
            try:
                listed = await self.store.list_push()
            except BackendUnavailable as exc:
                log.warning("push subscriptions not read: %s", exc.message)
            else:
                self.subscriptions = {queue: from_fields(queue, fields) for queue, fields in listed.items()}
                for queue in self.subscriptions.keys() - self._feeds.keys():
                    self._feeds[queue] = asyncio.create_task(self._feed(queue), name=f"restmq-push:{queue}")
                for queue in self._feeds.keys() - self.subscriptions.keys():
                    self._feeds.pop(queue).cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH):
                    await self._changed.wait()

    async def _feed(self, queue: str) -> None:
        wake = self._wakes[queue] = asyncio.Event()

        def listener(event: str) -> None:
            if not event.startswith(TAKEN):
                wake.set()

        await self.waiters.add(queue, listener)
        try:
            while queue in self.subscriptions:
                wake.clear()
                try:
                    pause = await self._fill(self.subscriptions[queue])
                except BackendUnavailable as exc:
                    log.warning("push to %s: %s", queue, exc.message)
                    pause = IDLE
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await wake.wait()
        finally:
            self.waiters.remove(queue, listener)
            self._feeds.pop(queue, None)
            self._wakes.pop(queue, None)

    async def _fill(self, sub: Subscription) -> float:
        """Start what deliveries the limits allow; how long to wait before the next look (0: at once)."""
        if sub.paused:  # as last read: a POST of the subscription resumes it
            return IDLE
        lease_ms = round((sub.timeout + LEASE_MARGIN) * 1000)
        slots, wait_ms = await self.store.reserve_push(sub.queue, min(BATCH, sub.max_in_flight), lease_ms, self.owner)
        if not slots:
            return wait_ms / 1000 if wait_ms else FULL
        try:
            result = await self.store.pop(sub.queue, PopMode.LEASE, len(slots), lease_ms)
        except BaseException:
            await self._give_back(sub.queue, slots)
            raise
        messages = result.messages
        if len(messages) < len(slots):
            await self._give_back(sub.queue, slots[len(messages) :])
        for message, slot in zip(messages, slots, strict=False):
            task = asyncio.create_task(self._deliver(sub, message, slot))
            self._deliveries.add(task)
            self._holding[task] = (message, slot)
            task.add_done_callback(self._delivered)
        if not messages:
            return IDLE
        return 0.0 if len(messages) == len(slots) else FULL

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled():  # a cancelled one is given back by close()
            self._holding.pop(task, None)

    async def _give_back(self, queue: str, slots: list[str]) -> None:
        with contextlib.suppress(BackendUnavailable):  # unreturned slots expire with their lease
            await self.store.settle_push(queue, slots, len(slots), Outcome())

    async def _deliver(self, sub: Subscription, message: Message, slot: str) -> None:
        attempt = await self.sender.send(sub, message)
        try:
            if attempt.status == 410:
                await self._pause(sub, message, slot)
            else:
                outcome = await self._settle(sub, message, attempt)
                await self.store.settle_push(sub.queue, [slot], 0, outcome)
        except BackendUnavailable as exc:  # the lease and the slot expire: the message is delivered again
            log.warning("push to %s: %s not settled: %s", sub.queue, message.key, exc.message)
        finally:
            if (wake := self._wakes.get(sub.queue)) is not None:
                wake.set()  # a slot is free: the feed may start another delivery

    async def _settle(self, sub: Subscription, message: Message, attempt: Attempt) -> Outcome:
        queue, n, count = message.queue, message.n, message.count
        if attempt.ok:
            acked = await self.store.settle(queue, SettleAction.ACK, n, expected_count=count)
            # a lease that ran out before the reply (a reply slower than timeout + margin): delivered again later
            self.counts["delivered" if acked.outcome is SettleOutcome.OK else "delivered_late"] += 1
            return Outcome(delivered=1, status=attempt.status, error="", success=True)
        self.counts["refused" if attempt.refused else "failed"] += 1
        if count >= sub.max_attempts:
            if await self.store.dead_letter_push(queue, n, count, attempt.status, attempt.error):
                self.counts["dead"] += 1
                return Outcome(failed=1, dead=1, status=attempt.status, error=attempt.error, success=False)
            return Outcome(failed=1, status=attempt.status, error=attempt.error, success=False)
        delay_ms = round(sub.backoff(count) * 1000)
        await self.store.settle(queue, SettleAction.RELEASE, n, expected_count=count, ms=delay_ms)
        return Outcome(failed=1, status=attempt.status, error=attempt.error, success=False)

    async def _pause(self, sub: Subscription, message: Message, slot: str) -> None:
        """A 410: the pause is recorded before the message goes back, so that no process (this one's feed is woken
        by the release) reserves a slot and delivers it again to the target that is gone."""
        log.warning("push to %s paused: the target answered 410 Gone", sub.queue)
        self.counts["failed"] += 1
        self.counts["paused"] += 1
        paused = Outcome(failed=1, status=410, error="HTTP 410: subscription paused", pause=True, success=False)
        await self.store.settle_push(sub.queue, [slot], 0, paused)
        await self.store.settle(message.queue, SettleAction.RELEASE, message.n, expected_count=message.count)
