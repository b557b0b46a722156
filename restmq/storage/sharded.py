"""ShardedStore: the Store protocol over a consistent-hash ring of independent Redis/Valkey nodes.

A queue lives on the node the ring picks for its hash tag. When that node is down, adds go to
the next live node on the ring; reads (GET, leases, streams) drain the owner first and then every
other node known to hold messages of the queue, so messages stored on a fallback, or on a
previous owner after a node was added, are still delivered. Node i of the --redis list numbers
its messages from i * 10^12, so keys stay unique across nodes and acks find their node directly.
Append new nodes to the end of the list; reordering it changes that numbering.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from restmq.core.model import (
    AddResult,
    History,
    HistoryEntry,
    Hold,
    Message,
    PopMode,
    PopResult,
    QueueSettings,
    QueueStats,
    Recent,
    SettleAction,
    SettleOutcome,
    SettleResult,
    StreamResult,
    StreamStatus,
)
from restmq.core.store import EventHandler
from restmq.errors import BackendUnavailable, DeadlinePassed, RingIncomplete
from restmq.storage import keys, ring_admin
from restmq.storage.node import COUNTERS, RedisStore, TokenStates, revocation_time
from restmq.storage.placement_keeper import PlacementKeeper
from restmq.storage.push_ring import RingPushCommands
from restmq.storage.ring import HashRing
from restmq.storage.schedules import RingSchedules
from restmq.storage.urls import redact

log = logging.getLogger("restmq.ring")

KEY_STRIDE = 10**12
T = TypeVar("T")


def _call_with(call: Callable[[RedisStore, int], Awaitable[T]], want: int, store: RedisStore) -> Awaitable[T]:
    return call(store, want)


def _recent(queue: str, limit: int, max_bytes: int | None) -> Callable[[RedisStore], Awaitable[Recent]]:
    return lambda store: store.recent(queue, limit, max_bytes)


def _index(store: RedisStore) -> int:
    """A ring node's place in the --redis list, from the key numbers it hands out."""
    return store.key_base // KEY_STRIDE


def split_weight(url: str) -> tuple[str, int]:
    """`redis://h:6379/0?weight=3` -> (`redis://h:6379/0`, 3)."""
    parts = urlsplit(url)
    if "weight=" not in parts.query:
        return url, 1
    query = parse_qsl(parts.query, keep_blank_values=True)
    weights = [value for name, value in query if name == "weight"]
    rest = [(name, value) for name, value in query if name != "weight"]
    weight = int(weights[-1]) if weights else 1
    if weight < 1:
        raise ValueError(f"weight must be 1 or more in {redact(url)}")
    return urlunsplit(parts._replace(query=urlencode(rest))), weight


def _names(nodes: Sequence[Node]) -> str:
    return ", ".join(node.name for node in nodes)


def merge_stats(queue: str, rows: Sequence[QueueStats], home_row: QueueStats | None) -> QueueStats:
    """One queue's statistics from the nodes that answered for it: counts added up, consumers the largest
    count (they register on every live node), settings those of its home node (else of the first row)."""
    if not rows:  # its nodes failed just now
        return QueueStats(queue, 0, 0, 0, 0, 0, QueueSettings(), dict.fromkeys(COUNTERS.values(), 0))
    settings_row = home_row if home_row is not None else rows[0]
    return QueueStats(
        queue,
        sum(r.length for r in rows),
        sum(r.delayed for r in rows),
        sum(r.leased for r in rows),
        sum(r.dead for r in rows),
        max(r.consumers for r in rows),
        settings_row.settings,
        {name: sum(r.counters[name] for r in rows) for name in rows[0].counters},
    )


def merge_pages(pages: Sequence[Sequence[str]], limit: int) -> list[str]:
    """The first `limit` distinct names of several sorted lists, in order (a queue may be listed on several nodes:
    its owner and a fallback)."""
    merged: list[str] = []
    for name in heapq.merge(*pages):
        if not merged or merged[-1] != name:
            merged.append(name)
            if len(merged) == limit:
                break
    return merged


@dataclass
class Node:
    index: int
    store: RedisStore
    weight: int
    key: str  # the node's place on the ring: its URL without weight (hashed, never shown)
    healthy: bool = True
    retry_at: float = 0.0
    backoff: float = 0.25

    @property
    def name(self) -> str:
        """What logs and /ready show: the URL with its password redacted."""
        return self.store.name


class ShardedStore(RingPushCommands):  # push subscriptions: storage/push_ring.py
    def __init__(
        self,
        urls: Sequence[str],
        *,
        refresh_interval: float = 2.0,
        coalesce: bool = True,
        placement: str = "static",
        placement_interval: float = 30.0,
        plain_batches: bool = False,
    ) -> None:
        self.nodes: list[Node] = []
        for index, url in enumerate(urls):
            clean, weight = split_weight(url)
            store = RedisStore.from_url(
                clean, key_base=index * KEY_STRIDE, coalesce=coalesce, plain_batches=plain_batches
            )
            self.nodes.append(Node(index, store, weight, clean))
        self._by_key = {node.key: node for node in self.nodes}
        if len(self._by_key) != len(self.nodes) or len({node.name for node in self.nodes}) != len(self.nodes):
            raise ValueError("each ring node must have a different URL")
        self.ring = HashRing({node.key: node.weight for node in self.nodes})
        self._holders: dict[str, set[str]] = {}  # queue -> nodes that may hold its messages
        self._holders_loaded = False  # until the first refresh, every live node may hold any queue
        self._refresh_interval = refresh_interval
        self._monitor: asyncio.Task[None] | None = None
        # capacity placement (docs/scaling.md): the keeper follows the shared table and swaps self.ring
        self.placement: PlacementKeeper | None = None
        if placement == "capacity":
            self.placement = PlacementKeeper(self.nodes, self._reweigh, interval=placement_interval)
        self._placer: asyncio.Task[None] | None = None
        self.schedules = RingSchedules(self)

    # -- node selection and health ------------------------------------------------------------

    def _start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = asyncio.get_running_loop().create_task(self._watch(), name="restmq-ring-health")
        if self.placement is not None and self._placer is None:
            self._placer = asyncio.get_running_loop().create_task(self.placement.run(), name="restmq-ring-placement")

    def _reweigh(self, weights: Sequence[float]) -> None:
        """Use new effective weights: only queues whose owner changes move; their older messages are read from
        the previous owner as after adding a node (it lists them in its registry: self._holders)."""
        self.ring = HashRing({node.key: weight for node, weight in zip(self.nodes, weights, strict=True)})

    async def _placed(self) -> None:
        """Before the first placement of this process: follow the shared table once (later, the keeper's loop)."""
        if self.placement is not None and not self.placement.followed:
            self._start_monitor()
            with contextlib.suppress(BackendUnavailable):
                await self.placement.follow()

    async def ring_view(self) -> dict[str, Any]:
        return await ring_admin.ring_view(self)

    async def ring_override(self, node: str, weight: float | None) -> dict[str, Any]:
        return await ring_admin.ring_override(self, node, weight)

    async def ring_reset(self) -> dict[str, Any]:
        return await ring_admin.ring_reset(self)

    def placement_version(self) -> int | None:
        table = self.placement.table if self.placement is not None else None
        return table.version if table is not None else None

    async def owner(self, queue: str) -> int:
        """The index of the node new messages of `queue` go to now (its first live node on the ring)."""
        await self._placed()
        return self._home(queue).index

    async def _watch(self) -> None:
        """Probe down nodes with backoff and refresh which nodes hold which queues."""
        while True:
            for node in self.nodes:
                if not node.healthy and time.monotonic() >= node.retry_at:
                    try:
                        await node.store.ping()
                        # its registry before it is reported up: reads then find its queues at once, those it
                        # holds as a fallback too (the registry refresh runs only after this sweep)
                        held = await node.store.list_queues()
                    except BackendUnavailable:
                        node.backoff = min(node.backoff * 2, 5.0)
                        node.retry_at = time.monotonic() + node.backoff
                        continue
                    for queue in held:
                        self._held_on(queue, node)
                    node.healthy, node.backoff = True, 0.25
                    log.info("ring node %s is back", node.name)
                    with contextlib.suppress(BackendUnavailable):
                        await self._token_states()  # it learns the revocations it missed
            await self._refresh_holders()
            await asyncio.sleep(self._refresh_interval / 4)

    async def _refresh_holders(self) -> None:
        holders: dict[str, set[str]] = {}
        for node in self._live():
            with contextlib.suppress(BackendUnavailable):
                for queue in await node.store.list_queues():
                    holders.setdefault(keys.hash_tag(queue), set()).add(node.key)
        # Keep what was known: a fallback add of this process made while the registries were read, and nodes
        # down now, still hold messages (registries only shrink on purge, which forgets the queue here too).
        for tag, names in self._holders.items():
            holders.setdefault(tag, set()).update(names)
        self._holders, self._holders_loaded = holders, True

    def _down(self, node: Node, exc: BackendUnavailable) -> None:
        if node.healthy:
            log.warning("ring node %s is down: %s", node.name, exc.message)
        node.healthy = False
        node.retry_at = time.monotonic() + node.backoff

    def _live(self) -> list[Node]:
        return [node for node in self.nodes if node.healthy]

    def _walk(self, queue: str) -> list[Node]:
        return [self._by_key[key] for key in self.ring.walk(keys.hash_tag(queue))]

    def _readers(self, queue: str) -> list[Node]:
        """Live nodes to read the queue from: its owner, then every other node holding its messages."""
        held = self._holders.get(keys.hash_tag(queue), set())
        walk = self._walk(queue)
        if not self._holders_loaded:  # a fresh process: messages may sit on a previous owner or fallback
            self._start_monitor()
            return [node for node in walk if node.healthy]
        return [node for i, node in enumerate(walk) if node.healthy and (i == 0 or node.key in held)]

    def _home(self, queue: str) -> Node:
        """Where the queue's new messages and settings go: the first live node on its ring walk."""
        for node in self._walk(queue):
            if node.healthy:
                return node
        raise BackendUnavailable("every ring node is down")

    async def _on(self, node: Node, call: Callable[[RedisStore], Awaitable[T]]) -> T:
        """`call` on the node; a failure marks it down. RedisStore retries a broken call once on a fresh
        connection, so a stale pooled connection (the node restarted) never marks a node down: only a
        fresh connection failing, or the node refusing (loading, out of memory...), does."""
        self._start_monitor()
        try:
            return await call(node.store)
        except DeadlinePassed:  # the request's time ran out before this node was asked: not the node's fault
            raise
        except BackendUnavailable as exc:
            self._down(node, exc)
            raise

    async def _first(self, nodes: Sequence[Node], call: Callable[[RedisStore], Awaitable[T]]) -> T:
        """Run on the first node that answers."""
        error: BackendUnavailable | None = None
        for node in nodes:
            if not node.healthy:
                continue
            try:
                return await self._on(node, call)
            except BackendUnavailable as exc:
                error = exc
        raise error or BackendUnavailable("every ring node is down")

    async def _each(self, call: Callable[[RedisStore], Awaitable[T]], *, require_one: bool = True) -> list[T]:
        """Run on every live node; down nodes are skipped."""
        return [result for _, result in await self._each_node(call, require_one=require_one)]

    async def _each_node(
        self, call: Callable[[RedisStore], Awaitable[T]], *, require_one: bool = True
    ) -> list[tuple[Node, T]]:
        results = []
        for node in self._live():
            with contextlib.suppress(BackendUnavailable):
                results.append((node, await self._on(node, call)))
        if require_one and not results:
            raise BackendUnavailable("every ring node is down")
        return results

    def _held_on(self, queue: str, node: Node) -> None:
        self._holders.setdefault(keys.hash_tag(queue), set()).add(node.key)

    # -- messages -----------------------------------------------------------------------------

    async def add(self, queue: str, values: Sequence[str], **options: Any) -> AddResult:
        await self._placed()
        for node in self._walk(queue):
            if not node.healthy:
                continue
            try:
                result = await self._on(node, lambda s: s.add(queue, values, **options))
            except BackendUnavailable:
                continue
            self._held_on(queue, node)
            return result
        raise BackendUnavailable("every ring node is down")

    async def pop(self, queue: str, mode: PopMode, count: int = 1, lease_ms: int = 0) -> PopResult:
        return await self._pop_from(self._readers(queue), queue, mode, count, lease_ms)

    async def _pop_from(
        self,
        readers: Sequence[Node],
        queue: str,
        mode: PopMode,
        count: int,
        lease_ms: int,
        first: PopResult | None = None,
    ) -> PopResult:
        """pop over `readers` in turn, after what `first` (an earlier node's answer) delivered."""
        messages: list[Message] = list(first.messages) if first else []
        stopped = first.stopped if first else False
        for node in readers:
            if len(messages) >= count or stopped:
                break
            try:
                result = await self._on(node, lambda s: s.pop(queue, mode, count - len(messages), lease_ms))
            except BackendUnavailable:
                continue
            stopped = stopped or result.stopped
            messages.extend(result.messages)
        if not messages and not stopped and not self._live():
            raise BackendUnavailable("every ring node is down")
        return PopResult(stopped=stopped and not messages, messages=messages, acked=first.acked if first else [])

    async def ack_lease(
        self, queue: str, acks: Sequence[tuple[int, int | None]], count: int, lease_ms: int
    ) -> PopResult:
        """The acks of messages numbered by the queue's first reader ride on its lease call; the others are
        settled on their own nodes first (as settle finds them). The lease goes on to the other readers as pop's."""
        readers = self._readers(queue)
        first = readers[0] if readers else None
        local = [i for i, (n, _) in enumerate(acks) if first is not None and self._by_number(queue, n)[0] is first]
        acked = [SettleResult(SettleOutcome.MISSING, 0)] * len(acks)
        for i, (n, expected) in enumerate(acks):
            if i not in local:
                acked[i] = await self.settle(queue, SettleAction.ACK, n, expected_count=expected)
        if first is None or not local:
            result = await self.pop(queue, PopMode.LEASE, count, lease_ms)
            return PopResult(result.stopped, result.messages, acked)
        try:
            head = await self._on(first, lambda s: s.ack_lease(queue, [acks[i] for i in local], count, lease_ms))
        except BackendUnavailable:  # their node is down: settle finds them elsewhere, or raises as a DELETE would
            for i in local:
                n, expected = acks[i]
                acked[i] = await self.settle(queue, SettleAction.ACK, n, expected_count=expected)
            result = await self.pop(queue, PopMode.LEASE, count, lease_ms)
            return PopResult(result.stopped, result.messages, acked)
        for i, outcome in zip(local, head.acked, strict=True):
            n, expected = acks[i]
            elsewhere = self._by_number(queue, n)[1:]
            missing = outcome.outcome is SettleOutcome.MISSING
            acked[i] = await self._settle_on(elsewhere, queue, SettleAction.ACK, n, expected) if missing else outcome
        return await self._pop_from(readers[1:], queue, PopMode.LEASE, count, lease_ms, replace(head, acked=acked))

    def _by_number(self, queue: str, n: int) -> list[Node]:
        index = n // KEY_STRIDE
        first = [self.nodes[index]] if index < len(self.nodes) else []
        return first + [node for node in self._readers(queue) if node not in first]

    async def settle(
        self, queue: str, action: SettleAction, n: int, *, expected_count: int | None = None, ms: int = 0
    ) -> SettleResult:
        return await self._settle_on(self._by_number(queue, n), queue, action, n, expected_count, ms)

    async def _settle_on(
        self, nodes: Sequence[Node], queue: str, action: SettleAction, n: int, expected: int | None, ms: int = 0
    ) -> SettleResult:
        """settle on the first of `nodes` that has message n."""
        result = SettleResult(SettleOutcome.MISSING, 0)
        for node in nodes:
            result = await self._on(node, lambda s: s.settle(queue, action, n, expected_count=expected, ms=ms))
            if result.outcome is not SettleOutcome.MISSING:
                return result
        return result

    async def settle_many(
        self, queue: str, action: SettleAction, items: Sequence[tuple[int, int]]
    ) -> list[SettleResult]:
        # each message may live on another node: one at a time, as settle finds them
        return [await self.settle(queue, action, n, expected_count=count) for n, count in items]

    async def delete(self, queue: str, n: int) -> bool:
        for node in self._by_number(queue, n):
            if await self._on(node, lambda s: s.delete(queue, n)):
                return True
        return False

    async def purge(self, queue: str) -> int:
        removed = sum(await self._each(lambda s: s.purge(queue)))
        self._holders.pop(keys.hash_tag(queue), None)
        return removed

    async def redrive(self, dead_queue: str, limit: int = 10_000) -> int:
        return sum(await self._each(lambda s: s.redrive(dead_queue, limit)))

    async def recent(self, queue: str, limit: int, max_bytes: int | None = None) -> Recent:
        found: list[Message] = []
        used = 0
        for node in self._readers(queue):
            if len(found) >= limit:
                break
            want, budget = limit - len(found), None if max_bytes is None else max_bytes - used
            with contextlib.suppress(BackendUnavailable):
                part = await self._on(node, _recent(queue, want, budget))
                found.extend(part.messages)
                used += sum(len(m.value.encode()) for m in part.messages)
                if part.truncated:  # the byte limit is used up: the next nodes' messages would not fit either
                    return Recent(found, True)
        return Recent(found[:limit])

    # -- settings and statistics --------------------------------------------------------------

    async def settings(self, queue: str) -> QueueSettings:
        return await self._first(self._walk(queue), lambda s: s.settings(queue))

    async def attributes(self, queue: str) -> str | None:
        return await self._first(self._walk(queue), lambda s: s.attributes(queue))

    async def set_attributes(self, queue: str, document: str | None) -> None:
        """Written to every live node, as settings are."""
        await self._on(self._home(queue), lambda s: s.set_attributes(queue, document))
        for node in self._live():
            if node is not self._home(queue):
                with contextlib.suppress(BackendUnavailable):
                    await self._on(node, lambda s: s.set_attributes(queue, document))

    async def message_attributes(self, queue: str, ns: Sequence[int]) -> list[str | None]:
        found: list[str | None] = []
        for n in ns:  # few (a receive's at most ten): each on the nodes that may hold it
            value: str | None = None
            for node in self._by_number(queue, n):
                with contextlib.suppress(BackendUnavailable):
                    value = (await self._on(node, lambda s, n=n: s.message_attributes(queue, [n])))[0]  # type: ignore[misc]
                if value is not None:
                    break
            found.append(value)
        return found

    async def update_settings(self, queue: str, **changes: Any) -> QueueSettings:
        """Written to every live node, so a fallback node enforces them too."""
        home = self._home(queue)
        result = await self._on(home, lambda s: s.update_settings(queue, **changes))
        for node in self._live():
            if node is not home:
                with contextlib.suppress(BackendUnavailable):
                    await self._on(node, lambda s: s.update_settings(queue, **changes))
        return result

    async def list_queues(self) -> list[str]:
        names: set[str] = set()
        for found in await self._each(lambda s: s.list_queues()):
            names.update(found)
        return sorted(names)

    async def list_page(self, after: str | None, limit: int) -> list[str]:
        """Each live node's first `limit` names after `after`, merged: a name among the first `limit` of the whole
        ring is among the first `limit` of every node that lists it."""
        return merge_pages(await self._each(lambda s: s.list_page(after, limit)), limit)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Each live node is asked, all at once, about the queues it may hold (and those it is home for):
        asking every node about every queue made GET /stats/ cost nodes x queues scripts."""
        if not queues:
            return []
        homes = [self._home(queue) for queue in queues]
        answers = await self._ask_for_stats(queues, self._stats_questions(queues, homes))
        merged = []
        for i, queue in enumerate(queues):
            rows = [found[i] for _, found in answers if i in found]
            home_row = next((found[i] for node, found in answers if node is homes[i] and i in found), None)
            merged.append(merge_stats(queue, rows, home_row))
        return merged

    def _stats_questions(self, queues: Sequence[str], homes: Sequence[Node]) -> dict[int, list[int]]:
        """Which node to ask about which queues: node index -> positions in `queues` (its home and readers)."""
        asked: dict[int, list[int]] = {}
        for i, queue in enumerate(queues):
            for node in {homes[i].index: homes[i], **{n.index: n for n in self._readers(queue)}}.values():
                asked.setdefault(node.index, []).append(i)
        return asked

    async def _ask_for_stats(
        self, queues: Sequence[str], asked: dict[int, list[int]]
    ) -> list[tuple[Node, dict[int, QueueStats]]]:
        """Each node's answers by position in `queues`; a node that fails is left out (and marked down)."""

        async def ask(node: Node, positions: list[int]) -> tuple[Node, dict[int, QueueStats]]:
            found = await self._on(node, lambda s: s.stats([queues[i] for i in positions]))
            return node, dict(zip(positions, found, strict=True))

        replies = await asyncio.gather(*(ask(self.nodes[n], at) for n, at in asked.items()), return_exceptions=True)
        answers = []
        for reply in replies:
            if isinstance(reply, BackendUnavailable):
                continue  # that node is marked down; the others answer
            if isinstance(reply, BaseException):
                raise reply
            answers.append(reply)
        if not answers:
            raise BackendUnavailable("every ring node is down")
        return answers

    def node_states(self) -> dict[str, str]:
        return {node.name: "up" if node.healthy else "down" for node in self.nodes}

    async def reap(self, limit: int = 100) -> int:
        return sum(await self._each(lambda s: s.reap(limit), require_one=False))

    # -- streaming ----------------------------------------------------------------------------

    async def _stream(
        self, queue: str, call: Callable[[RedisStore, int], Awaitable[StreamResult]], limit: int
    ) -> StreamResult:
        total, status = 0, StreamStatus.OK
        for i, node in enumerate(self._readers(queue)):
            try:
                result = await self._on(node, functools.partial(_call_with, call, limit - total))
            except BackendUnavailable:
                continue
            if i == 0:
                status = result.status
            if result.status is not StreamStatus.OK:
                if i == 0 and result.status in (StreamStatus.STOPPED, StreamStatus.POLICY):
                    return result
                continue
            total += result.count
            if total >= limit:
                break
        return StreamResult(status if total == 0 else StreamStatus.OK, total)

    async def broadcast(self, queue: str, limit: int, history: int) -> StreamResult:
        return await self._stream(queue, lambda s, n: s.broadcast(queue, n, history), limit)

    async def assign(self, queue: str, limit: int, inflight_ms: int, grace_ms: int = 0) -> StreamResult:
        return await self._stream(queue, lambda s, n: s.assign(queue, n, inflight_ms, grace_ms), limit)

    async def touch_consumers(self, queue: str, ids: Sequence[str], ttl_ms: int) -> int:
        """Consumers register on every live node, so any node holding messages can assign them."""
        return max(await self._each(lambda s: s.touch_consumers(queue, ids, ttl_ms)))

    async def heartbeat(self, queue: str, ids: Sequence[str], ttl_ms: int, held: Sequence[Hold]) -> list[int]:
        """Consumers beat on every live node; each held message on the node that numbered it (a message
        of a node that cannot be reached is not reported gone: its lease runs out there)."""
        on_node: dict[int, list[Hold]] = {}
        for hold in held:
            on_node.setdefault(hold.n // KEY_STRIDE, []).append(hold)
        replies = await self._each_node(lambda s: s.heartbeat(queue, ids, ttl_ms, on_node.get(_index(s), [])))
        return [n for _, gone in replies for n in gone]

    async def drop_consumers(self, queue: str, ids: Sequence[str]) -> None:
        await self._each(lambda s: s.drop_consumers(queue, ids), require_one=False)

    async def history(
        self, queue: str, limit: int, *, max_bytes: int | None = None, since: str | None = None, oldest_ms: int = 0
    ) -> History:
        """Every node's history within the limits, merged by broadcast time and cut to the limits again."""
        entries: list[HistoryEntry] = []
        since_at: int | None = None
        for part in await self._each(
            lambda s: s.history(queue, limit, max_bytes=max_bytes, since=since, oldest_ms=oldest_ms)
        ):
            entries.extend(part.entries)
            if part.since_at_ms is not None:
                since_at = part.since_at_ms
        if since_at is not None:  # the other nodes' entries from before the resume point were sent before it
            entries = [e for e in entries if e.at_ms >= since_at]
        entries.sort(key=lambda e: e.at_ms, reverse=True)  # stable: each node's own order is kept
        kept, used = [], 0
        for entry in entries[:limit]:
            used += entry.size
            if max_bytes is not None and used > max_bytes:
                break
            kept.append(entry)
        return History(kept, since_at if len(kept) == len(entries) else None)

    # -- events ---------------------------------------------------------------------------------

    async def publish(self, queue: str, payload: str) -> None:
        await self._on(self._home(queue), lambda s: s.publish(queue, payload))

    async def subscribe(self, queue: str) -> None:
        for node in self.nodes:  # down nodes subscribe when their listener reconnects
            await node.store.subscribe(queue)

    async def unsubscribe(self, queue: str) -> None:
        for node in self.nodes:
            await node.store.unsubscribe(queue)

    def on_event(self, handler: EventHandler) -> None:
        for node in self.nodes:
            node.store.on_event(handler)

    # -- tokens: on every node or on none; valid while no live node marks them revoked ------------

    async def _every_node(self, call: Callable[[RedisStore], Awaitable[T]]) -> tuple[list[tuple[Node, T]], list[Node]]:
        """Run on every node, those believed down too (they may be back): the results, and the nodes missed."""
        done, missed = [], []
        for node in self.nodes:
            try:
                done.append((node, await self._on(node, call)))
            except BackendUnavailable:
                missed.append(node)
        return done, missed

    async def save_token(self, token_id: str, record: str) -> None:
        written, missed = await self._every_node(lambda s: s.save_token(token_id, record))
        if missed:
            for node, _ in written:  # a token missing on a node would fail there: undo it everywhere
                with contextlib.suppress(BackendUnavailable):
                    await self._on(node, lambda s: s.forget_token(token_id))
            raise RingIncomplete(
                f"token not created: ring node {_names(missed)} unreachable "
                "(a token must be stored on every node; nothing was kept)"
            )

    async def delete_token(self, token_id: str) -> bool:
        marked, missed = await self._every_node(lambda s: s.mark_revoked({token_id: revocation_time()}))
        if not marked:
            raise BackendUnavailable("every ring node is down")
        if missed:
            raise RingIncomplete(
                f"token {token_id} revoked on {len(marked)} of {len(self.nodes)} ring nodes; "
                f"ring node {_names(missed)} unreachable. Servers refuse the token while any node that has the "
                "revocation answers, and the missing node learns it when read together with one of them"
            )
        return any(count for _, count in marked)

    async def load_token(self, token_id: str) -> str | None:
        return (await self.load_tokens([token_id])).get(token_id)

    async def load_tokens(self, token_ids: Sequence[str]) -> dict[str, str]:
        return (await self._token_states(token_ids)).valid() if token_ids else {}

    async def list_tokens(self) -> dict[str, str]:
        return (await self._token_states()).valid()

    async def _token_states(self, token_ids: Sequence[str] | None = None) -> TokenStates:
        """Records and revocation marks merged over the live nodes. A node missing a mark that another
        node has (it was down during the revoke) gets it now, so it cannot bring the token back alone."""
        per_node = await self._each_node(lambda s: s.token_states(token_ids))
        merged = TokenStates({}, {})
        for _, states in per_node:
            merged.revoked.update(states.revoked)
            for token_id, record in states.records.items():
                merged.records.setdefault(token_id, record)
        for node, states in per_node:
            missing = {token_id: at for token_id, at in merged.revoked.items() if token_id not in states.revoked}
            if missing:
                log.info("ring node %s missed %d token revocation(s): marking them there", node.name, len(missing))
                with contextlib.suppress(BackendUnavailable):
                    await self._on(node, functools.partial(RedisStore.mark_revoked, revoked=missing))
        return merged

    async def ping(self) -> None:
        await self._each(lambda s: s.ping())

    async def close(self) -> None:
        for task in (self._monitor, self._placer):
            while task is not None and not task.done():  # again and again: Python 3.11's wait_for can swallow a cancel
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
        for node in self.nodes:
            await node.store.close()
