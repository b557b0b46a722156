"""QueueService: the queue semantics every transport shares (REST, JSON protocol, streams)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from restmq.config import Limits
from restmq.core import deadline, listing
from restmq.core.model import (
    AddResult,
    FlowStatus,
    Policy,
    PopMode,
    PopResult,
    QueuePage,
    QueueSettings,
    QueueStats,
    Recent,
    SettleAction,
    SettleOutcome,
)
from restmq.core.names import (
    MAX_DELIVERIES,
    MAX_IDEMPOTENCY_KEY,
    MAX_PRIORITY,
    MAX_TTL,
    check_group_id,
    check_queue_name,
    parse_message_key,
)
from restmq.core.store import Store
from restmq.core.waiters import Waiters
from restmq.errors import Conflict, InvalidParameter, InvalidValue, NotFound, PayloadTooLarge

log = logging.getLogger("restmq.service")

DEAD_SUFFIX = ":dead"
# A long-poll looks again this often even without an event: a safety net, since every path that
# makes a message ready publishes one and the subscription is confirmed before the first look.
SAFETY_RECHECK = 2.0
# What a lease answers for each ack it carried: "ok", or the error code the same ack as a DELETE would answer.
ACK_CODES = {
    SettleOutcome.OK: "ok",
    SettleOutcome.MISSING: "MESSAGE_NOT_FOUND",
    SettleOutcome.NOT_LEASED: "LEASE_EXPIRED",
    SettleOutcome.STALE: "LEASE_STALE",
}


@dataclass(frozen=True, slots=True)
class AddOptions:
    priority: int = 0
    delay: float = 0.0
    ttl: float = 0.0
    idempotency_key: str | None = None
    group: str | None = None  # a message group id (docs/semantics.md, "Message groups")


class QueueService:
    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.waiters = Waiters(store)

    # -- producing ----------------------------------------------------------------------------

    async def add(
        self,
        queue: str,
        values: Sequence[str],
        options: AddOptions = AddOptions(),
        *,
        attributes: Sequence[str] | None = None,  # one per value, stored with it (Store.add)
    ) -> AddResult:
        check_queue_name(queue)
        if not values:
            raise InvalidValue("nothing to add: the batch is empty")
        if len(values) > self.limits.max_batch:
            raise PayloadTooLarge(f"batch of {len(values)} messages exceeds the limit of {self.limits.max_batch}")
        for value in values:
            if len(value) > self.limits.max_value or len(value.encode()) > self.limits.max_value:
                raise PayloadTooLarge(f"a message value exceeds the limit of {self.limits.max_value} bytes")
        if not 0 <= options.priority <= MAX_PRIORITY:
            raise InvalidParameter(f"priority must be an integer from 0 to {MAX_PRIORITY}")
        self._check_seconds("delay", options.delay, self.limits.max_delay)
        self._check_seconds("ttl", options.ttl, MAX_TTL)
        idem = options.idempotency_key
        if idem is not None and not 0 < len(idem) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidParameter(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        if options.group is not None:
            self._check_group(options.group, options)  # no priority, no delay: the group's own script
        return await self.store.add(
            queue,
            values,
            priority=options.priority,
            delay_ms=round(options.delay * 1000),
            ttl_ms=round(options.ttl * 1000),
            idempotency_key=idem,
            idempotency_window_ms=round(self.limits.idempotency_window * 1000),
            group=options.group,
            attributes=attributes,
        )

    @staticmethod
    def _check_group(group: str, options: AddOptions) -> None:
        """A group orders its messages by when they were added: a priority or a per-message delay would reorder
        them, so neither is taken with a group (as SQS FIFO queues refuse a per-message DelaySeconds)."""
        check_group_id(group)
        if options.priority:
            raise InvalidParameter("priority cannot be combined with group: a group delivers in the order added")
        if options.delay:
            raise InvalidParameter("delay cannot be combined with group: a group delivers in the order added")

    # -- consuming ----------------------------------------------------------------------------

    async def get(
        self,
        queue: str,
        *,
        mode: PopMode = PopMode.TAKE,
        count: int = 1,
        lease: float = 0.0,
        wait: float = 0.0,
    ) -> PopResult:
        """Deliver up to `count` messages; with `wait`, long-poll until one arrives or time runs out."""
        self.check_get(queue, mode=mode, count=count, lease=lease, wait=wait)
        lease_ms = max(1, round(lease * 1000)) if mode is PopMode.LEASE else 0
        if wait <= 0:
            return await self.store.pop(queue, mode, count, lease_ms)
        loop = asyncio.get_running_loop()
        ends = loop.time() + wait
        async with self.waiters.line(queue) as line:
            while True:
                ticket = line.ticket()  # before looking: an add while we look wakes the ticket
                try:
                    result = await self.store.pop(queue, mode, count, lease_ms)
                except BaseException:
                    line.done(ticket)
                    raise
                remaining = ends - loop.time()
                if result.messages or remaining <= 0:
                    line.done(ticket)
                    return result
                await line.wait(ticket, min(remaining, SAFETY_RECHECK))
                deadline.renew()  # the wait was not backend work: the next look gets the whole --backend-timeout

    async def lease_after_acks(
        self, queue: str, acks: Sequence[str], *, count: int = 1, lease: float, wait: float = 0.0
    ) -> PopResult:
        """Ack each key of `acks` (`<key>`, or `<key>@<count>`: only if not delivered again since), then lease
        like get(): one backend round trip where the messages live on one node. The acks run whatever they
        find, and the lease whatever the acks found; PopResult.acked tells each ack's outcome."""
        self.check_get(queue, mode=PopMode.LEASE, count=count, lease=lease, wait=wait)
        if len(acks) > self.limits.max_count:
            raise InvalidParameter(f"at most {self.limits.max_count} acks in one request")
        items = [self._ack_item(queue, ack) for ack in acks]
        result = await self.store.ack_lease(queue, items, count, max(1, round(lease * 1000)))
        if result.messages or result.stopped or wait <= 0:
            return result
        later = await self.get(queue, mode=PopMode.LEASE, count=count, lease=lease, wait=wait)
        return replace(later, acked=result.acked)

    def _ack_item(self, queue: str, ack: str) -> tuple[int, int | None]:
        key, at, count = ack.rpartition("@")  # a key never holds "@" after its last ":"
        if at and count.isascii() and count.isdigit() and len(count) <= 15:
            return self.message_number(queue, key), int(count)
        return self.message_number(queue, ack), None

    def check_get(self, queue: str, *, mode: PopMode, count: int, lease: float, wait: float) -> None:
        """Raise the error get() would raise for these arguments, without reading anything (HEAD)."""
        check_queue_name(queue)
        if not 1 <= count <= self.limits.max_count:
            raise InvalidParameter(f"count must be from 1 to {self.limits.max_count}")
        self._check_seconds("wait", wait, self.limits.max_wait)
        if mode is PopMode.LEASE:
            self._check_seconds("lease", lease, self.limits.max_lease)
            if lease <= 0:
                raise InvalidParameter("lease must be more than 0 seconds")

    async def settle(
        self, queue: str, key: str, action: SettleAction, *, expected_count: int | None = None, seconds: float = 0.0
    ) -> int:
        """Ack, release or extend a leased message; returns its delivery count."""
        n = self.message_number(queue, key)
        limit = self.limits.max_lease if action is SettleAction.EXTEND else self.limits.max_delay
        self._check_seconds("lease" if action is SettleAction.EXTEND else "delay", seconds, limit)
        if action is SettleAction.EXTEND and seconds <= 0:
            raise InvalidParameter("lease must be more than 0 seconds")
        result = await self.store.settle(queue, action, n, expected_count=expected_count, ms=round(seconds * 1000))
        if result.outcome is SettleOutcome.MISSING:
            raise NotFound(f"no message {key}: it was acked, deleted or expired", code="MESSAGE_NOT_FOUND")
        if result.outcome is SettleOutcome.NOT_LEASED:
            raise Conflict(
                f"{key} is not leased: its lease expired and it went back to the queue", code="LEASE_EXPIRED"
            )
        if result.outcome is SettleOutcome.STALE:
            raise Conflict(f"{key} was delivered again (count {result.count}) after this delivery", code="LEASE_STALE")
        return result.count

    async def ack_many(self, queue: str, items: Sequence[tuple[str, int]]) -> list[SettleOutcome]:
        """Ack several leased messages of one queue, each (key, delivery count of its lease), in one round trip
        where the backend allows; their outcomes in order (a message delivered again since is STALE, left alone)."""
        numbered = [(self.message_number(queue, key), count) for key, count in items]
        return [result.outcome for result in await self.store.settle_many(queue, SettleAction.ACK, numbered)]

    async def delete_message(self, queue: str, key: str) -> bool:
        return await self.store.delete(queue, self.message_number(queue, key))

    async def redrive(self, dead_queue: str) -> int:
        """Move every waiting dead letter of `<queue>:dead` back to `<queue>`; returns how many."""
        check_queue_name(dead_queue)
        if not dead_queue.endswith(DEAD_SUFFIX) or len(dead_queue) == len(DEAD_SUFFIX):
            raise InvalidParameter(f"only dead-letter queues (<queue>{DEAD_SUFFIX}) can be redriven")
        total = 0
        while moved := await self.store.redrive(dead_queue):
            total += moved
        return total

    async def purge(self, queue: str) -> int:
        check_queue_name(queue)
        return await self.store.purge(queue)

    # -- settings and statistics --------------------------------------------------------------

    async def settings(self, queue: str) -> QueueSettings:
        return await self.store.settings(check_queue_name(queue))

    async def set_policy(self, queue: str, policy: str) -> QueueSettings:
        if policy not in {p.value for p in Policy}:
            raise InvalidParameter("policy must be broadcast or roundrobin")
        return await self.store.update_settings(check_queue_name(queue), policy=policy)

    async def set_control(
        self, queue: str, *, status: str | None = None, max_deliveries: int | None = None
    ) -> QueueSettings:
        if status is not None and status not in {s.value for s in FlowStatus}:
            raise InvalidParameter("status must be start or stop")
        if max_deliveries is not None and not 0 <= max_deliveries <= MAX_DELIVERIES:
            raise InvalidParameter(f"max_deliveries must be from 0 (unlimited) to {MAX_DELIVERIES}")
        return await self.store.update_settings(check_queue_name(queue), status=status, max_deliveries=max_deliveries)

    async def attributes(self, queue: str) -> str | None:
        """The queue's attribute document (the SQS layer's JSON), or None."""
        return await self.store.attributes(check_queue_name(queue))

    async def set_attributes(self, queue: str, document: str | None) -> None:
        """Store (and list the queue) or, with None, remove the queue's attribute document."""
        await self.store.set_attributes(check_queue_name(queue), document)

    async def message_attributes(self, queue: str, ns: Sequence[int]) -> list[str | None]:
        """The attributes stored with messages ns (add's `attributes`), in order; None where there are none."""
        return await self.store.message_attributes(check_queue_name(queue), ns)

    async def list_queues(self) -> list[str]:
        """Every listed queue name: unbounded, so no request handler calls it; listings use page()."""
        return await self.store.list_queues()

    async def page(self, after: str | None, limit: int | None, covers: listing.Covers | None = None) -> QueuePage:
        """One page of the queue names in name order (see restmq.core.listing): `limit` is lowered to
        Limits.max_page (which is also the default); `covers` keeps only the names a token covers."""
        size = listing.page_size(limit, self.limits.max_page)
        return await listing.page(self.store, listing.check_after(after), size, covers)

    def every_page(self, covers: listing.Covers | None = None) -> AsyncIterator[list[str]]:
        """Every page of queue names in turn (Limits.max_page each), for walks over all queues that hold one
        page at a time (the metrics' totals)."""
        return listing.pages(self.store, self.limits.max_page, covers)

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        names = list(queues) if queues is not None else await self.store.list_queues()
        for name in names:
            check_queue_name(name)
        return await self.store.stats(names)

    async def recent(self, queue: str, limit: int = 20) -> Recent:
        """The newest waiting messages, within --max-peek-bytes of values."""
        return await self.store.recent(check_queue_name(queue), limit, self.limits.max_peek_bytes)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def message_number(queue: str, key: str) -> int:
        check_queue_name(queue)
        n = parse_message_key(queue, key)
        if n is None:
            raise InvalidParameter(f"invalid message key {key!r}: keys of {queue} look like {queue}:<n>")
        return n

    @staticmethod
    def _check_seconds(name: str, value: float, limit: float) -> None:
        if not (0 <= value <= limit):
            raise InvalidParameter(f"{name} must be from 0 to {limit:g} seconds")
