"""The placement table's I/O for a ring in capacity mode: sample every node, hold the recompute lease, write
the table to every node, and follow the newest version (restmq/storage/placement.py has the formula).

Every server runs one keeper. Each `interval` the one holding the lease (`rmq:placement:lease` on the first
live node, with an expiry) samples the nodes and writes a new version when a weight moved past the damping;
every keeper reads the tables more often (`follow_every`) and applies the newest one to its in-memory ring,
so a request's owner lookup never leaves the process. A table for another node list is refused, not applied.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from restmq.errors import BackendUnavailable, BadRequest, Conflict
from restmq.storage import keys
from restmq.storage.errors import backend_errors
from restmq.storage.node import RedisStore
from restmq.storage.placement import Capacity, Table, capacity_view, fingerprint, first_table, next_weights

log = logging.getLogger("restmq.placement")

LATENCY_WINDOW = 5  # samples (intervals) whose median latency a node's weight uses

# Writes the table unless the node holds a newer one: by version, then (two writers of one version) by time and
# writer, the order every server picks the newest by. Versions only grow on every node.
WRITE_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  local is_table = ok and type(old) == 'table'
  local version, at = is_table and tonumber(old['version']), is_table and tonumber(old['at'])
  if version and at and type(old['by']) == 'string' then
    local new_version, new_at = tonumber(ARGV[2]), tonumber(ARGV[3])
    if version > new_version then return 0 end
    if version == new_version and (at > new_at or (at == new_at and old['by'] >= ARGV[4])) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
# Takes the lease, or renews it when this keeper holds it.
TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class RingNode(Protocol):
    index: int
    store: RedisStore
    weight: int
    key: str
    healthy: bool


async def sample(store: RedisStore) -> Capacity:
    """INFO memory (maxmemory, else the host's memory) and the fastest of three PING round trips (the slower ones
    mostly measure this process's own event loop being busy)."""
    with backend_errors(store.name):
        info: dict[str, Any] = await store.client.info("memory")
        rtts = []
        for _ in range(3):
            start = time.perf_counter()
            await store.client.ping()
            rtts.append((time.perf_counter() - start) * 1000)
    limit = int(info.get("maxmemory") or 0) or int(info.get("total_system_memory") or 0)
    return Capacity(int(info.get("used_memory") or 0), limit, min(rtts))


class PlacementKeeper:
    def __init__(
        self, nodes: Sequence[RingNode], apply: Callable[[list[float]], None], *, interval: float = 30.0
    ) -> None:
        self.nodes = nodes
        self._apply = apply
        self.interval = interval
        self.follow_every = min(1.0, interval / 2)
        self.fingerprint = fingerprint([node.key for node in nodes])
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self.table: Table | None = None  # the table applied here
        self.conflict: str | None = None  # why the newest table is refused
        self.samples: list[Capacity | None] = [None] * len(nodes)
        # each node's latency over its last LATENCY_WINDOW samples: the median counts, so one slow moment moves nothing
        self._latencies: list[collections.deque[float]] = [collections.deque(maxlen=LATENCY_WINDOW) for _ in nodes]
        self._computed_at = -interval  # the first tick computes
        self.followed = False  # the tables were read once
        self._lock = asyncio.Lock()

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except BackendUnavailable:
                pass  # the nodes come back: the next tick tries again
            except Exception:  # a bug must not stop placement for good: logged, tried again
                log.exception("ring placement tick failed")
            await asyncio.sleep(self.follow_every)

    async def tick(self) -> None:
        async with self._lock:
            newest = await self._follow()
            if self.conflict is not None or time.monotonic() - self._computed_at < self.interval:
                return
            if not await self._take_lease():
                return
            self._computed_at = time.monotonic()
            self.samples = [await self._sample(node) for node in self.nodes]
            base = newest or self._fresh_table()
            weights = next_weights(base, self.samples)
            if newest is None or weights != newest.weights:
                await self._publish(base, weights, base.overrides, "capacity")

    async def _sample(self, node: RingNode) -> Capacity | None:
        if not node.healthy:
            return None
        try:
            found = await sample(node.store)
        except BackendUnavailable:
            return None
        window = self._latencies[node.index]
        window.append(found.latency_ms)
        return dataclasses.replace(found, latency_ms=statistics.median(window))

    # -- reading and writing the table ------------------------------------------------------------

    async def _tables(self) -> list[tuple[RingNode, Table | None]]:
        """Each live node's table (None: it has none, or a malformed one)."""
        found: list[tuple[RingNode, Table | None]] = []
        for node in self.nodes:
            if not node.healthy:
                continue
            with contextlib.suppress(BackendUnavailable), backend_errors(node.store.name):
                text = await node.store.client.get(keys.PLACEMENT)
                if isinstance(text, bytes):
                    text = text.decode(errors="replace")
                found.append((node, Table.from_json(text) if text else None))
        return found

    async def _write(self, node: RingNode, table: Table) -> bool:
        """The table on the node unless it holds that version or a newer one; False when the node cannot be reached."""
        with contextlib.suppress(BackendUnavailable), backend_errors(node.store.name):
            await node.store.client.eval(
                WRITE_NEWER, 1, keys.PLACEMENT, table.to_json(), table.version, repr(table.at), table.by
            )
            return True
        return False

    async def follow(self) -> None:
        async with self._lock:
            await self._follow()

    async def _follow(self) -> Table | None:
        """Apply the newest table (or record why not); returns it."""
        found = await self._tables()
        self.followed = True
        tables = [table for _, table in found if table is not None]
        if not tables:
            return None
        # the highest version; should two servers have written the same version at once, every server picks the
        # same one of them (the later, then by name), and the next version overwrites both
        newest = max(tables, key=lambda t: (t.version, t.at, t.by))
        if newest.fingerprint != self.fingerprint or len(newest.weights) != len(self.nodes):
            reason = (
                f"placement table version {newest.version} (by {newest.by}) is for another node list "
                f"({', '.join(newest.names)}): this server keeps its static placement; start every server with the "
                "same --redis list, in the same order"
            )
            if reason != self.conflict:
                log.error("%s", reason)
            self.conflict = reason
            return newest
        if self.conflict is not None:
            log.info("placement table version %d matches this server's node list again", newest.version)
        self.conflict = None
        if self.table is None or newest.version > self.table.version or newest != self.table:
            self._use(newest)
        for node, table in found:  # a node that was down, or was written by a losing writer, gets the newest
            if table is None or (table.version, table.at, table.by) < (newest.version, newest.at, newest.by):
                await self._write(node, newest)
        return newest

    def _use(self, table: Table) -> None:
        before = self.table.weights if self.table else [float(node.weight) for node in self.nodes]
        self.table = table
        if table.weights != before:
            log.info(
                "ring placement version %d: weights %s (were %s, by %s)", table.version, table.weights, before, table.by
            )
        self._apply(list(table.weights))

    def _fresh_table(self) -> Table:
        names = [node.store.name for node in self.nodes]
        return first_table(self.fingerprint, names, [float(n.weight) for n in self.nodes], self.me, time.time())

    async def _publish(self, base: Table, weights: list[float], overrides: dict[str, float], why: str) -> Table:
        table = Table(
            base.version + 1,
            self.fingerprint,
            [node.store.name for node in self.nodes],
            [float(node.weight) for node in self.nodes],
            weights,
            dict(overrides),
            [capacity_view(s) for s in self.samples],
            self.me,
            time.time(),
        )
        written = sum([await self._write(node, table) for node in self.nodes])
        if not written:
            raise BackendUnavailable("placement table not written: every ring node is down")
        log.warning(
            "ring placement version %d (%s): weights %s, overrides %s, written to %d of %d nodes",
            table.version, why, weights, overrides or "none", written, len(self.nodes),
        )  # fmt: skip
        self._use(table)
        return table

    async def _take_lease(self) -> bool:
        for node in self.nodes:  # the first live node keeps the lease
            if not node.healthy:
                continue
            ttl_ms = int(max(self.interval * 3, 1.0) * 1000)
            with contextlib.suppress(BackendUnavailable), backend_errors(node.store.name):
                return bool(await node.store.client.eval(TAKE_LEASE, 1, keys.PLACEMENT_LEASE, self.me, ttl_ms))
        return False

    # -- operators ------------------------------------------------------------------------------

    async def override(self, index: int, weight: float | None) -> Table:
        """Pin node `index` at `weight` (0: drain), or unpin it (None): a new table version at once."""
        if weight is not None and not 0 <= weight <= 1000:
            raise BadRequest("weight must be between 0 and 1000")
        async with self._lock:
            newest = await self._follow()
            if self.conflict is not None:
                raise Conflict(self.conflict)
            base = newest or self._fresh_table()
            overrides = dict(base.overrides)
            if weight is None:
                overrides.pop(str(index), None)
            else:
                overrides[str(index)] = weight
            if all(overrides.get(str(i)) == 0 for i in range(len(self.nodes))):
                raise Conflict("every ring node would be drained: at least one must take new queues")
            weights = list(base.weights)
            for i in range(len(self.nodes)):
                if str(i) in overrides:
                    weights[i] = overrides[str(i)]
                elif str(i) in base.overrides:  # unpinned: its configured weight until the next measurement
                    weights[i] = base.configured[i]
            action = "unpin" if weight is None else ("drain" if weight == 0 else f"pin at {weight}")
            return await self._publish(base, weights, overrides, f"{action} node {index}")

    async def reset(self) -> Table:
        """Replace the table, whatever node list it was for, by one for this server's list (configured weights, no
        overrides), one version above the newest: after an intended change of the --redis list. Servers still on
        the old list refuse it from then on."""
        async with self._lock:
            tables = [table for _, table in await self._tables() if table is not None]
            top = max((table.version for table in tables), default=0)
            fresh = self._fresh_table()
            fresh.version = top
            self.conflict, self.table = None, None
            return await self._publish(fresh, list(fresh.weights), {}, "reset to this server's node list")
