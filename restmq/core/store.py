"""The Store protocol: everything the queue core asks of a backend.

The core defines it and restmq.storage implements it (single node, consistent-hash ring, Redis
Cluster), so dependencies point one way: storage imports core, never the reverse. The core and the
web layer see this protocol alone. Every method that touches one queue is atomic on the backend.
Backend failures raise restmq.errors.BackendUnavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from restmq.core.model import (
    AddResult,
    History,
    Hold,
    PopMode,
    PopResult,
    QueueSettings,
    QueueStats,
    Recent,
    SettleAction,
    SettleResult,
    StreamResult,
)
from restmq.core.schedule_store import ScheduleStore

# Called for every event published on a subscribed queue: (queue, event). Events: "add:N" (N
# messages became ready), "add" (some did: after a sweep or a redrive), "purge", "settings", or a
# streaming payload. Called with queue "*" after a reconnect, when events may
# have been missed.
EventHandler = Callable[[str, str], Awaitable[None] | None]


class Store(Protocol):
    @property
    def schedules(self) -> ScheduleStore:
        """Where schedules live (restmq/core/schedule_store.py)."""
        ...

    async def add(
        self,
        queue: str,
        values: Sequence[str],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        ttl_ms: int = 0,
        # a message group (no priority, no delay): its messages are delivered in the order added, one of them in
        # flight at a time (docs/semantics.md, "Message groups")
        group: str | None = None,
        idempotency_key: str | None = None,
        idempotency_window_ms: int = 300_000,
        attributes: Sequence[str] | None = None,
    ) -> AddResult:
        """Append values (all or nothing) and return their numbers. A known idempotency key within
        its window returns the first add's numbers with duplicate=True and adds nothing. `attributes`, one
        string per value ("" for none), are stored with each message, go with it to its dead-letter queue
        and back, and are removed with it (message_attributes reads them)."""
        ...

    async def pop(self, queue: str, mode: PopMode, count: int = 1, lease_ms: int = 0) -> PopResult:
        """Deliver up to `count` messages from the head (priority first, then FIFO). A stopped queue
        delivers nothing and returns stopped=True. Each message's delivery count rises by one."""
        ...

    async def ack_lease(
        self, queue: str, acks: Sequence[tuple[int, int | None]], count: int, lease_ms: int
    ) -> PopResult:
        """Ack each (n, expected count or None) like `settle`, then `pop` in lease mode, in one round trip
        where the messages live on one node. An ack that fails never keeps the lease from running, nor a
        stopped or empty queue the acks; PopResult.acked holds their outcomes in order."""
        ...

    async def settle(
        self, queue: str, action: SettleAction, n: int, *, expected_count: int | None = None, ms: int = 0
    ) -> SettleResult:
        """Ack, release (optionally after `ms`) or extend (to `ms` from now) the lease of message n.
        With `expected_count`, a message delivered again since then is STALE and left alone."""
        ...

    async def settle_many(
        self, queue: str, action: SettleAction, items: Sequence[tuple[int, int]]
    ) -> list[SettleResult]:
        """`settle` of several (n, expected count) of one queue at once, in one round trip where the
        backend allows; the results in order."""
        ...

    async def delete(self, queue: str, n: int) -> bool:
        """Remove message n wherever it is. True when it existed."""
        ...

    async def purge(self, queue: str) -> int:
        """Remove every message of the queue, unlist it and tell its streaming consumers.
        Returns how many messages were removed."""
        ...

    async def redrive(self, dead_queue: str, limit: int = 10_000) -> int:
        """Move up to `limit` waiting messages of `<queue>:dead` back to `<queue>` as new messages."""
        ...

    async def message_attributes(self, queue: str, ns: Sequence[int]) -> list[str | None]:
        """The attributes stored by `add` with messages ns of the queue, in order (None: none, or gone)."""
        ...

    async def attributes(self, queue: str) -> str | None:
        """The queue's attribute document (opaque to the store: the SQS layer's JSON), or None."""
        ...

    async def set_attributes(self, queue: str, document: str | None) -> None:
        """Store (and list the queue), or with None remove, the queue's attribute document; purge keeps it."""
        ...

    async def settings(self, queue: str) -> QueueSettings: ...

    async def update_settings(
        self,
        queue: str,
        *,
        policy: str | None = None,
        status: str | None = None,
        max_deliveries: int | None = None,
    ) -> QueueSettings:
        """Change settings and notify every server process subscribed to the queue."""
        ...

    async def list_queues(self) -> list[str]:
        """Names of queues that hold or held messages since their last purge, sorted. All of them: listings
        that answer requests read pages (list_page) instead."""
        ...

    async def list_page(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` names of listed queues that sort after `after` (from the first when None), in name
        order, read as one range of the ordered index on each node."""
        ...

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Statistics of many queues, batched per backend node."""
        ...

    async def recent(self, queue: str, limit: int, max_bytes: int | None = None) -> Recent:
        """Up to `limit` of the newest waiting messages, newest first, without delivering them. With
        `max_bytes`, it stops before the message whose value would pass that many bytes in total (and
        says so with truncated=True); nothing beyond it is read."""
        ...

    async def reap(self, limit: int = 100) -> int:
        """Run due timers (delays, expired leases, ttl) of up to `limit` queues; returns messages moved."""
        ...

    async def broadcast(self, queue: str, limit: int, history: int) -> StreamResult:
        """Take up to `limit` messages of a broadcast queue and publish them to every subscribed
        process as one event "b<JSON list of {key,value,count}>"; keep the newest `history` of them."""
        ...

    async def assign(self, queue: str, limit: int, inflight_ms: int, grace_ms: int = 0) -> StreamResult:
        """Lease up to `limit` messages of a roundrobin queue to its registered consumers in rotation
        and publish one event "r<JSON list of {to,key,value,count}>". A consumer id ending in
        "/<ms>" leases for that long; others for `inflight_ms`; none past its consumer's presence
        deadline + `grace_ms` (its process's heartbeat extends them)."""
        ...

    async def touch_consumers(self, queue: str, ids: Sequence[str], ttl_ms: int) -> int:
        """Register or refresh streaming consumers for `ttl_ms`; returns the live count over all processes."""
        ...

    async def heartbeat(self, queue: str, ids: Sequence[str], ttl_ms: int, held: Sequence[Hold]) -> list[int]:
        """This process's heartbeat for a queue: refresh its consumers `ids` for `ttl_ms`, and extend the
        lease of each roundrobin message it holds to `hold_ms` from now (never shortened).
        Returns the numbers of the held messages that are no longer leased with their count (acked, released,
        expired or delivered again): the process stops holding them."""
        ...

    async def drop_consumers(self, queue: str, ids: Sequence[str]) -> None: ...

    async def history(
        self, queue: str, limit: int, *, max_bytes: int | None = None, since: str | None = None, oldest_ms: int = 0
    ) -> History:
        """The newest broadcast deliveries, newest first: at most `limit` of them, of at most `max_bytes`
        as stored, none broadcast before `oldest_ms`, and with `since` only those newer than the
        delivery keyed `since` (History.since_at_ms says whether the read got back to it). Nothing
        beyond those limits is read."""
        ...

    async def publish(self, queue: str, payload: str) -> None:
        """Send an event to every server process subscribed to the queue."""
        ...

    async def subscribe(self, queue: str) -> None: ...

    async def unsubscribe(self, queue: str) -> None: ...

    def on_event(self, handler: EventHandler) -> None:
        """Set the one handler that receives subscribed queues' events."""
        ...

    # Tokens. A revocation leaves a mark that outlives the record: a token is valid only while no
    # reachable node marks it revoked, so a ring node that missed the revoke cannot bring it back.

    async def save_token(self, token_id: str, record: str) -> None:
        """Store a token record. On a ring: on every node, or on none (RingIncomplete, after undoing the
        writes that were made)."""
        ...

    async def load_token(self, token_id: str) -> str | None:
        """The record of a token that exists and is not revoked, else None."""
        ...

    async def load_tokens(self, token_ids: Sequence[str]) -> dict[str, str]:
        """`load_token` for several tokens in one go: the records of those that exist, not revoked."""
        ...

    async def list_tokens(self) -> dict[str, str]:
        """Every token record that is not revoked, by id."""
        ...

    async def delete_token(self, token_id: str) -> bool:
        """Revoke a token: mark it revoked, then drop its record; True if a record existed. On a ring every
        reachable node is marked; RingIncomplete when some node could not be reached."""
        ...

    async def ping(self) -> None:
        """Raise BackendUnavailable unless the store can serve (on a ring: at least one node answers)."""
        ...

    def node_states(self) -> dict[str, str]:
        """Each backend node's last known state, "up" or "down", by its name: the URL with any password
        redacted (urls.redact), in the order of the --redis list."""
        ...

    async def close(self) -> None: ...
