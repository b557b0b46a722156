"""Streaming delivery (COMET, SSE, WebSocket) that holds across server processes.

Each process keeps one QueueDispatcher per queue that has local streaming consumers. The
dispatcher takes messages with one atomic backend call that also publishes them on the queue's
event channel; every process, this one included, delivers from that event to its own consumers:

- broadcast: `Store.broadcast` takes messages and publishes them once; every process writes each
  message to all of its consumers of the queue, in order.
- roundrobin: `Store.assign` leases each message to one registered consumer, rotating over the
  consumers of every process, and publishes the assignments; the owning process writes the message
  and then acks it (or, in lease mode, the client acks it). Each process beats every `beat` seconds
  for each such queue (`Store.heartbeat`): its consumers stay registered for `presence_ttl` more, and
  the messages it holds stay leased for `hold_grace` beyond that. When a process dies, its consumers
  leave the rotation within `presence_ttl` and what it held returns to the queue within
  `presence_ttl + hold_grace`; while it lives, a slow consumer keeps what it holds up to the
  in-flight bound (or its lease).

A consumer has a bounded mailbox; when it is full the consumer is disconnected, so one slow
reader never stalls the others. See docs/ARCHITECTURE.md for the timelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from restmq.core.model import HistoryEntry, Hold, Policy, SettleAction, SettleOutcome, StreamStatus
from restmq.core.names import parse_message_key
from restmq.core.store import Store
from restmq.core.waiters import Waiters
from restmq.errors import BackendUnavailable

log = logging.getLogger("restmq.dispatch")

BATCH = 100
SHUTDOWN = "server shutting down"  # the close reason that tells clients to reconnect elsewhere


@dataclass(frozen=True)
class StreamConfig:
    buffer: int = 1000  # messages queued per connection before it counts as too slow
    presence_ttl: float = 2.0  # seconds a roundrobin consumer outlives its process's last heartbeat
    hold_grace: float = 0.8  # seconds more for what the process holds: a late beat costs a pause, not a redelivery
    beat: float = 0.5  # seconds between a process's heartbeats for each of its roundrobin queues
    broadcast_presence_ttl: float = 15.0  # the same for broadcast queues (it only counts them): beats every ttl/3
    inflight: float = 10.0  # seconds a roundrobin message may be in flight before it returns
    history: int = 1000  # broadcast deliveries kept per queue for SSE resume
    history_age: float = 300.0  # seconds they are kept
    heartbeat: float = 15.0  # seconds between SSE heartbeats / WebSocket pings
    safety_poll: float = 5.0  # seconds between dispatch attempts when no event arrives


@dataclass
class Delivery:
    """One message on its way to streaming consumers; transports cache their encodings here."""

    key: str
    value: str
    count: int
    lease: bool = False  # roundrobin lease mode: the client must ack
    encoded: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.key.rsplit(":", 1)[1])


class Consumer:
    """One streaming connection's mailbox.

    Deliveries wait in a list; the transport takes everything that is due in one call and writes
    it as one chunk, so a burst costs one write per connection, not one per message. Waiting costs
    one future, never a task. Thousands stay open and idle, so each holds little: slots, and a list
    (an empty deque holds a 64-slot block) swapped out whole by `take`.

    A transport that can write synchronously sets `sink`: while it waits in `take` with nothing queued,
    what is offered is written at once from the offering callback (no task switch); when the sink
    refuses (the connection's write buffer is full), it is queued as before, and the bound on what
    waits holds.
    """

    __slots__ = (
        "queue",
        "id",
        "lease_ms",
        "closed",
        "inflight",
        "_buffer",
        "_mailbox",
        "_waiter",
        "_on_close",
        "quiet",
        "sink",
    )

    def __init__(self, queue: str, consumer_id: str, lease_ms: int, buffer: int) -> None:
        self.queue = queue
        self.id = consumer_id
        self.lease_ms = lease_ms
        self.closed: str | None = None
        # roundrobin n -> (delivery count, monotonic time its in-flight bound or lease ends), until written/acked
        self.inflight: dict[int, tuple[int, float]] = {}
        self._buffer = buffer
        self._mailbox: list[Delivery] = []
        self._waiter: asyncio.Future[None] | None = None
        self._on_close: list[Callable[[], object]] = []
        self.quiet = 0.0  # seconds since the transport last took something (see heartbeat)
        # writes deliveries now if the connection takes them (True), else refuses (False)
        self.sink: Callable[[list[Delivery]], bool] | None = None

    def offer(self, delivery: Delivery) -> bool:
        if self.closed is not None:
            return False
        if self._waiter is not None and self.sink is not None and not self._mailbox and self.sink([delivery]):
            self.quiet = 0.0
            return True
        if len(self._mailbox) >= self._buffer:
            self.close(f"too slow: {self._buffer} messages waiting to be written")
            return False
        self._mailbox.append(delivery)
        self._wake()
        return True

    def offer_all(self, deliveries: list[Delivery]) -> None:
        """Offer `deliveries` in order: to a waiting sink, all in one write."""
        if self._waiter is not None and self.sink is not None and not self._mailbox and self.closed is None:
            if self.sink(deliveries):
                self.quiet = 0.0
                return
        for delivery in deliveries:
            if not self.offer(delivery):
                break

    def close(self, reason: str, *, discard: bool = False) -> None:
        """End the stream once what is queued has been written; with `discard` (the reader may no
        longer see messages: its token was revoked), nothing more is written."""
        if self.closed is not None:
            return
        self.closed = reason
        if discard or len(self._mailbox) >= self._buffer:
            # Too slow: drop everything unwritten, so the stream ends at a prefix of what it was
            # sent (an SSE client resumes from its last id without a hole); the transport's close
            # releases unwritten roundrobin messages.
            self._mailbox.clear()
        self._wake()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call `callback` once the consumer is closed (at once if it already is)."""
        if self.closed is not None:
            callback()
        else:
            self._on_close.append(callback)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Delivery] | None:
        """Every delivery that is due, oldest first; [] for a heartbeat (see `heartbeat`); None once
        the consumer is closed and what was queued before has been taken."""
        if not self._mailbox and self.closed is None:
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self.quiet = 0.0
        if self._mailbox:
            batch, self._mailbox = self._mailbox, []
            return batch
        return None if self.closed is not None else []

    def heartbeat(self, elapsed: float, interval: float) -> None:
        """Count `elapsed` quiet seconds; after `interval` of them a waiting transport gets [] from
        `take` and writes a keep-alive. One timer for every consumer, not one per wait."""
        self.quiet += elapsed
        if self.quiet >= interval and self._waiter is not None:
            self._wake()


class QueueDispatcher:
    def __init__(self, streams: Streams, queue: str) -> None:
        self.streams = streams
        self.queue = queue
        self.consumers: dict[str, Consumer] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.policy: Policy | None = None  # as the last take found it; None until then
        self.next_beat = 0.0  # monotonic time this process's next heartbeat for the queue is due

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"restmq-dispatch-{self.queue}")

    async def stop(self) -> None:
        """End the dispatch loop and wait until it has ended. The flag ends it even when the cancel is lost
        (a loop running on would hold up its caller, which holds up every connect); a cancel of the caller
        itself is not swallowed."""
        self._stopped = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    def wake(self) -> None:
        self._wake.set()

    async def idle(self, timeout: float) -> None:
        """Wait for the dispatch loop to stop (it stops once Streams.closing is set)."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)

    def on_event(self, event: str) -> None:
        kind = event[:1]
        if kind == "b":
            deliveries = [Delivery(m["key"], m["value"], m["count"]) for m in orjson.loads(event[1:])]
            for consumer in list(self.consumers.values()):
                consumer.offer_all(deliveries)
        elif kind == "r":
            self._on_assignments(orjson.loads(event[1:]))
        elif event == "purge":
            for consumer in list(self.consumers.values()):
                consumer.close("queue deleted")
        elif event.startswith("sync:"):  # an echo (Waiters.confirm): nothing to deliver
            pass
        else:  # add, settings, reconnect: something may be deliverable now
            self._wake.set()

    def _on_assignments(self, assignments: list[dict[str, Any]]) -> None:
        mine = self.streams.node_id + "/"
        now = time.monotonic()
        for item in assignments:
            to = item["to"]
            if not to.startswith(mine):
                continue
            consumer = self.consumers.get(to)
            delivery = Delivery(item["key"], item["value"], item["count"], lease=not to.endswith("/0"))
            if consumer is not None and consumer.closed is None:
                bound = consumer.lease_ms / 1000 if consumer.lease_ms else self.streams.config.inflight
                consumer.inflight[delivery.n] = (delivery.count, now + bound)
                if consumer.offer(delivery):
                    continue
            self.streams.settle_later(self.queue, SettleAction.RELEASE, delivery.n, delivery.count)

    async def _run(self) -> None:
        store, config = self.streams.store, self.streams.config
        policy = Policy.BROADCAST
        while not self.streams.closing and not self._stopped:
            self._wake.clear()
            if not self.consumers:  # the last consumer just left: taking now would deliver to no one
                await self._sleep(config.safety_poll)
                continue
            try:
                if policy is Policy.BROADCAST:
                    result = await store.broadcast(self.queue, BATCH, config.history)
                else:
                    result = await store.assign(
                        self.queue, BATCH, round(config.inflight * 1000), round(config.hold_grace * 1000)
                    )
            except BackendUnavailable as exc:
                log.warning("dispatch %s: %s", self.queue, exc.message)
                await self._sleep(1.0)
                continue
            except Exception:
                log.exception("dispatch %s failed", self.queue)
                await self._sleep(1.0)
                continue
            if result.status is StreamStatus.POLICY:
                policy = Policy.ROUNDROBIN if policy is Policy.BROADCAST else Policy.BROADCAST
                if policy is Policy.ROUNDROBIN:
                    self.next_beat = 0.0  # the presence of a broadcast queue lasts too long: beat now
                continue
            self.policy = policy
            if result.status is StreamStatus.OK and result.count >= BATCH:
                await asyncio.sleep(0)  # more backlog: go on, but let the loop breathe
                continue
            await self._sleep(config.safety_poll)

    async def _sleep(self, timeout: float) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that comes as the wake ends its wait.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()


class Streams:
    """This process's streaming consumers, their dispatchers, presence and acks."""

    def __init__(self, store: Store, waiters: Waiters, config: StreamConfig | None = None) -> None:
        self.store = store
        self.waiters = waiters
        self.config = config or StreamConfig()
        self.node_id = os.urandom(6).hex()
        self._dispatchers: dict[str, QueueDispatcher] = {}
        self._next_id = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._acks: dict[str, list[tuple[int, int]]] = {}  # queue -> (n, count) written, not yet acked
        self._beating: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.closing = False  # shutting down: no new takes, no new consumers
        self._closing_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._beating = asyncio.create_task(self._beats(), name="restmq-presence")
        self._ticker = asyncio.create_task(self._heartbeats(), name="restmq-heartbeats")

    def close_consumers(self, reason: str = SHUTDOWN) -> None:
        """Begin ending every stream of this process (safe from a signal handler's loop callback):
        stop taking messages, let what was already taken reach the consumers, then close them."""
        if self._closing_task is None:
            self._closing_task = asyncio.get_running_loop().create_task(self._drain_and_close(reason))

    async def _drain_and_close(self, reason: str) -> None:
        self.closing = True
        dispatchers = list(self._dispatchers.values())
        for dispatcher in dispatchers:
            dispatcher.wake()
        for dispatcher in dispatchers:  # a take in flight finishes and publishes; no new one starts
            await dispatcher.idle(timeout=2.0)
        for dispatcher in dispatchers:  # an echo comes back after every event published before it
            await self.waiters.confirm(dispatcher.queue)
        for dispatcher in list(self._dispatchers.values()):
            for consumer in list(dispatcher.consumers.values()):
                consumer.close(reason)  # what is already queued is written first

    async def close(self, reason: str = SHUTDOWN) -> None:
        for task in (self._beating, self._ticker):
            if task is not None:
                task.cancel()
        self.close_consumers(reason)
        assert self._closing_task is not None
        await asyncio.wait({self._closing_task}, timeout=5)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        for dispatcher in list(self._dispatchers.values()):
            await dispatcher.stop()
        self._dispatchers.clear()

    def consumer_count(self, queue: str | None = None) -> int:
        if queue is not None:
            dispatcher = self._dispatchers.get(queue)
            return len(dispatcher.consumers) if dispatcher else 0
        return sum(len(d.consumers) for d in self._dispatchers.values())

    async def connect(self, queue: str, lease: float = 0.0) -> Consumer:
        """Register a streaming consumer: subscribed first, then visible to the rotation, then fed."""
        self._next_id += 1
        lease_ms = round(lease * 1000)
        consumer = Consumer(queue, f"{self.node_id}/{self._next_id}/{lease_ms}", lease_ms, self.config.buffer)
        async with self._lock:
            dispatcher = self._dispatchers.get(queue)
            if dispatcher is None:
                dispatcher = QueueDispatcher(self, queue)
                self._dispatchers[queue] = dispatcher
                await self.waiters.add(queue, dispatcher.on_event)  # returns once its events arrive
                dispatcher.start()
            dispatcher.consumers[consumer.id] = consumer
        try:
            await self.store.touch_consumers(queue, [consumer.id], round(self._presence_ttl(dispatcher) * 1000))
        except BaseException:
            self.disconnect(consumer)
            raise
        if self.closing:  # registered while the drain ran: it would never be closed by it
            consumer.close(SHUTDOWN)
        dispatcher.wake()
        return consumer

    def disconnect(self, consumer: Consumer) -> None:
        """Forget a consumer; its unacked roundrobin messages go back to the queue. Never blocks, so
        it is safe in a cancelled handler."""
        consumer.close(consumer.closed or "disconnected")
        dispatcher = self._dispatchers.get(consumer.queue)
        if dispatcher is not None and dispatcher.consumers.pop(consumer.id, None) is not None:
            self._spawn(self._cleanup(dispatcher, consumer))

    async def _cleanup(self, dispatcher: QueueDispatcher, consumer: Consumer) -> None:
        # Leave the rotation first: a message released while this consumer is still registered could
        # be assigned straight back to it, bounce (released again) and reach the next consumer with
        # its count raised twice.
        with contextlib.suppress(BackendUnavailable):
            await self.store.drop_consumers(consumer.queue, [consumer.id])
        for n, (count, _) in list(consumer.inflight.items()):
            await self._settle(consumer.queue, SettleAction.RELEASE, n, count)
        consumer.inflight.clear()
        async with self._lock:
            if dispatcher.consumers or self._dispatchers.get(consumer.queue) is not dispatcher:
                return
            del self._dispatchers[consumer.queue]
            self.waiters.remove(consumer.queue, dispatcher.on_event)
        # Outside the lock: connects (to any queue) need not wait for a dispatcher to end. A new dispatcher of
        # this queue may start meanwhile; this one, without consumers, takes nothing more.
        await dispatcher.stop()

    def written(self, consumer: Consumer, delivery: Delivery) -> None:
        """A transport wrote `delivery`: a roundrobin message without a client lease is done. Acks
        gather per queue and go in one batch, so a burst costs one task, not one per message."""
        if consumer.inflight and not delivery.lease and consumer.inflight.pop(delivery.n, None) is not None:
            waiting = self._acks.setdefault(consumer.queue, [])
            if not waiting:
                self._spawn(self._ack_written(consumer.queue))
            waiting.append((delivery.n, delivery.count))

    async def _ack_written(self, queue: str) -> None:
        await asyncio.sleep(0)  # let the rest of this tick's writes join the batch
        items = self._acks.pop(queue, [])
        try:
            results = await self.store.settle_many(queue, SettleAction.ACK, items)
        except BackendUnavailable as exc:  # the leases run out and the messages come back anyway
            log.warning("ack of %d streamed messages of %s failed: %s", len(items), queue, exc.message)
            return
        for (n, _), result in zip(items, results, strict=True):
            if result.outcome is not SettleOutcome.OK:
                log.info("ack of streamed %s:%d: %s", queue, n, result.outcome.value)

    def acked(self, consumer: Consumer, key: str) -> None:
        """The client settled `key` itself (WebSocket ack/release frame)."""
        n = parse_message_key(consumer.queue, key)
        if n is not None:
            consumer.inflight.pop(n, None)

    def settle_later(self, queue: str, action: SettleAction, n: int, count: int) -> None:
        self._spawn(self._settle(queue, action, n, count))

    async def _settle(self, queue: str, action: SettleAction, n: int, count: int) -> None:
        try:
            result = await self.store.settle(queue, action, n, expected_count=count)
        except BackendUnavailable as exc:  # the lease runs out and the message comes back anyway
            log.warning("%s %s:%d failed: %s", action.value, queue, n, exc.message)
            return
        if result.outcome is not SettleOutcome.OK and action is SettleAction.ACK:
            log.info("ack of streamed %s:%d: %s", queue, n, result.outcome.value)

    async def replay(
        self, queue: str, last_event_id: str, max_bytes: int | None = None
    ) -> tuple[list[HistoryEntry], bool]:
        """Broadcast history after `last_event_id`, oldest first, and whether it reaches back to it
        (False: messages may have been missed). Within `max_bytes` (as stored), the newest history
        is kept: the read stops before the entry that would pass it, and the replay is then incomplete.
        On a roundrobin queue an id the history does not hold names a roundrobin delivery: those are
        never replayed (an unwritten one went back to the queue), so nothing is missing or sent."""
        oldest = round(time.time() * 1000 - self.config.history_age * 1000)
        since = last_event_id if parse_message_key(queue, last_event_id) is not None else None
        history = await self.store.history(
            queue, self.config.history, max_bytes=max_bytes, since=since, oldest_ms=oldest
        )
        if history.since_at_ms is not None:
            return list(reversed(history.entries)), True
        if (await self.store.settings(queue)).policy is Policy.ROUNDROBIN:  # only when not reached: rare
            return [], True
        return list(reversed(history.entries)), False

    async def _heartbeats(self) -> None:
        """Every consumer quiet for `heartbeat` seconds gets a keep-alive; ticks at most 1 s apart."""
        while True:
            tick = min(self.config.heartbeat, 1.0)
            await asyncio.sleep(tick)
            for dispatcher in list(self._dispatchers.values()):
                for consumer in dispatcher.consumers.values():
                    consumer.heartbeat(tick, self.config.heartbeat)

    def _presence_ttl(self, dispatcher: QueueDispatcher) -> float:
        if dispatcher.policy is Policy.BROADCAST:
            return self.config.broadcast_presence_ttl
        return self.config.presence_ttl  # roundrobin, or not known yet

    async def _beats(self) -> None:
        """This process's heartbeats: every `beat` seconds, one presence call per queue that is due, all at
        once (the store sends calls of one tick in one round trip)."""
        beats, warned = 0, 0.0
        while True:
            await asyncio.sleep(self.config.beat)
            beats += 1
            now = time.monotonic()
            due = [d for d in self._dispatchers.values() if d.consumers and d.next_beat <= now]
            results = await asyncio.gather(*(self._beat(d, now) for d in due), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed and now - warned >= 5.0:  # one line per 5 s while the backend is away, not one per beat
                warned = now
                log.warning("heartbeat of %d of %d queues failed: %s", len(failed), len(due), failed[0])
            if beats % 10 == 0:  # now and then, a dispatch attempt whatever the events said
                for dispatcher in list(self._dispatchers.values()):
                    dispatcher.wake()

    async def _beat(self, dispatcher: QueueDispatcher, now: float) -> None:
        ttl = self._presence_ttl(dispatcher)
        dispatcher.next_beat = now + (self.config.beat if ttl <= self.config.presence_ttl else ttl / 3)
        consumers = list(dispatcher.consumers.values())
        hold = self.config.presence_ttl + self.config.hold_grace
        held = [
            Hold(n, count, round(min(hold, until - now) * 1000))
            for consumer in consumers
            for n, (count, until) in consumer.inflight.items()
            if until > now
        ]
        gone = await self.store.heartbeat(dispatcher.queue, [c.id for c in consumers], round(ttl * 1000), held)
        left = [c.id for c in consumers if dispatcher.consumers.get(c.id) is not c]
        if left:  # gone while the beat was on its way: it may have registered them again after they left
            await self.store.drop_consumers(dispatcher.queue, left)
        sent = {hold.n: hold.deliveries for hold in held}
        for n in gone:  # acked by the client elsewhere, or expired: no longer this process's to release
            for consumer in consumers:
                if consumer.inflight.get(n, (None,))[0] == sent[n]:  # not a new delivery that came meanwhile
                    del consumer.inflight[n]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
