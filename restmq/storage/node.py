"""RedisStore: the Store protocol on one Redis/Valkey server (or a Redis Cluster client).

Every queue operation is one Lua script over that queue's keys (one hash slot). The only
cross-slot writes are the queue registry and the reaper's timer index, which are indexes:
the scripts report when they must change, and those writes follow the script. Whatever a
crash between the two leaves missing, the reaper's index repair restores (index_repair.py).

Safe retries: a call whose connection broke (the engine restarted, the link dropped, a socket timed
out) is sent once more on a fresh connection. Every state-changing script call carries an operation
id, and its script remembers its reply under that id for a short while, so the repeat of a call that
had already run (only its reply was lost) gets that reply and changes nothing: no double add, no
second lease, no lost take.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from redis import exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from restmq.core.model import (
    AddResult,
    FlowStatus,
    History,
    HistoryEntry,
    Hold,
    Message,
    Policy,
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
from restmq.errors import BackendUnavailable, InvalidParameter
from restmq.storage import keys, plain_add
from restmq.storage.errors import backend_errors
from restmq.storage.events import EventListener
from restmq.storage.index_repair import IndexRepair, unlist
from restmq.storage.packing import fast_connection_class
from restmq.storage.push import PushCommands
from restmq.storage.schedules import NodeSchedules
from restmq.storage.scripts import Client, Scripts
from restmq.storage.urls import redact

log = logging.getLogger("restmq.storage")

STATS_BATCH = 500  # queues per stats script call: the engine is never blocked long, whatever the page size
REAP_ROUNDS = 50  # reap scripts per due queue per sweep (each moves up to 200 messages)
REPAIR_EVERY = 2  # sweeps between steps of the index repair (a step at the first sweep)
PLAIN_BATCH_MIN = 2  # messages from which a plain batch add goes in MULTI/EXEC rather than add.lua (plain_add.py)
OP_WINDOW_S = 30  # operation records: one hash per queue and window of this many seconds (lua/_lib.lua)
T = TypeVar("T")

# A connection that broke: the call is sent once more on a fresh one. Not the ConnectionError subclasses
# that a fresh connection would meet again at once: LOADING (the engine answered), a full pool, a refused login.
BROKEN = (rexc.ConnectionError, rexc.TimeoutError, OSError)
NOT_BROKEN = (rexc.BusyLoadingError, rexc.MaxConnectionsError, rexc.AuthenticationError)
# Scripts whose repeat is harmless: those carrying an operation id, reads, and idempotent writes. Not the
# streaming dispatch (broadcast, assign): its loop calls again anyway.
OPERATIONS = frozenset({"add", "add_group", "pop", "ack_lease", "settle", "delete", "purge", "redrive"})
RETRIED = OPERATIONS | {"peek_recent", "history"} | {"settings", "presence"}

# meta hash field -> statistics name
COUNTERS = {
    "added": "added",
    "delivered": "delivered",
    "acked": "acked",
    "redelivered": "redelivered",
    "expired": "expired",
    "dead": "dead_lettered",
}


def connect(url: str, *, max_connections: int = 200) -> Redis:
    """A client for one server. redis-py retries nothing itself: RedisStore retries a broken call once, on a
    fresh connection, where operation ids make that safe (redis-py would repeat any script on the same pool)."""
    client = Redis.from_url(
        url,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        health_check_interval=0,
        max_connections=max_connections,
    )
    # the URL picks the class (unix, TLS) over any argument: swap it before the first connection
    client.connection_pool.connection_class = fast_connection_class(client.connection_pool.connection_class)
    return client


def _not_cancelled(value: T) -> T:
    """`value`, unless this task was cancelled and the cancel got lost on the way.

    On Python 3.11, asyncio.wait_for (redis-py sends every command through it when socket_timeout is set)
    returns normally when a cancel races the command's completion. The background loops (reaper, stream
    dispatchers) would then never stop, and a server's shutdown would hang: their backend calls end here."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return value


def _repeat(script: str, keys_: Sequence[str]) -> Sequence[str]:
    """The KEYS of a call sent again after its connection broke: a state-changing script gets its operation key
    twice, so that it replays the first attempt's reply if that one ran."""
    return [*keys_, keys_[-1]] if script in OPERATIONS else keys_


def _stats_call(queues: Sequence[str]) -> tuple[list[str], list[int]]:
    """KEYS and ARGV of one stats script call over `queues`."""
    script_keys: list[str] = []
    counts: list[int] = []
    for queue in queues:
        # a dead-letter queue's own has no dead-ready key: `<queue>:dead:dead` would sit in another hash slot
        found = keys.stats_keys(queue)
        script_keys += found
        counts.append(len(found))
    return script_keys, counts


@functools.lru_cache(maxsize=8192)
def _dead_args(queue: str) -> tuple[tuple[str, ...], str]:
    """KEYS[10..18] and the dead-letter queue name for scripts that may dead-letter."""
    if keys.is_dead_letter_queue(queue):  # dead letters are not dead-lettered again
        return keys.queue_keys(queue).message_keys, ""
    dead = keys.dead_letter_queue(queue)
    return keys.queue_keys(dead).message_keys, dead


def _settle_keys(qk: keys.QueueKeys, action: SettleAction, dead_keys: Sequence[str]) -> Sequence[str]:
    """The keys of a settle call: the dead-letter queue's only with a release, the one action that may dead-letter."""
    return [*qk.message_keys, *dead_keys] if action is SettleAction.RELEASE else qk.message_keys


def _settings(values: Sequence[str | None]) -> QueueSettings:
    policy, status, max_deliveries = values
    return QueueSettings(
        policy=Policy(policy) if policy in ("broadcast", "roundrobin") else Policy.BROADCAST,
        status=FlowStatus(status) if status in ("start", "stop") else FlowStatus.START,
        max_deliveries=int(max_deliveries or 0),
        policy_set=policy is not None,
        status_set=status is not None,
    )


@dataclass
class TokenStates:
    """Token records and revocation marks (id -> revocation time), as read from one or more nodes."""

    records: dict[str, str]
    revoked: dict[str, str]

    def valid(self) -> dict[str, str]:
        return {token_id: record for token_id, record in self.records.items() if token_id not in self.revoked}


def revocation_time() -> str:
    return f"{time.time():.3f}"


class RedisStore(PushCommands):  # push subscriptions: storage/push.py
    # Whether this store sends a call whose connection broke once more itself (see the module docstring).
    retries_broken_calls = True

    def __init__(
        self,
        client: Client,
        *,
        name: str = "redis",
        key_base: int = 0,
        coalesce: bool = True,
        plain_batches: bool = False,
    ) -> None:
        """`name` is what errors, logs and node_states() show: never a URL with its password (see urls.redact)."""
        self.client = client
        self.key_base = key_base  # first message number of a queue on this node (ring mode)
        self.name = name
        self.scripts = Scripts(client, coalesce=coalesce)
        # plain batch adds in MULTI/EXEC (plain_add.py), when asked for (their order under concurrent adds is weaker):
        # only where this store retries a broken call itself, with the operation id add.lua replays; a cluster client
        # would resend a transaction by itself, adding twice
        self._plain_batches = plain_batches and self.retries_broken_calls and isinstance(client, Redis)
        self._token = uuid.uuid4().hex
        self._op_prefix = uuid.uuid4().hex[:16]  # operation ids: this store's random prefix and a counter
        self._op_counter = itertools.count()
        self._sweeps = 0
        self._up = True
        self._legacy_folded = False
        # queues seen with max_deliveries: their pops carry the dead-letter queue's keys (pop.lua)
        self._dead_lettering: set[str] = set()
        self.events = EventListener(self._make_pubsub, lambda q: keys.queue_keys(q).channel, name)
        self.index_repair = IndexRepair(client, self.scripts)
        self.schedules = NodeSchedules(self)

    @classmethod
    def from_url(cls, url: str, *, key_base: int = 0, coalesce: bool = True, plain_batches: bool = False) -> RedisStore:
        return cls(connect(url), name=redact(url), key_base=key_base, coalesce=coalesce, plain_batches=plain_batches)

    def _make_pubsub(self) -> Any:
        return self.client.pubsub()

    async def _run(self, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        with backend_errors(self.name):
            try:
                return await self.scripts.run(script, keys_, args)
            except NOT_BROKEN:
                raise
            except BROKEN:
                if script not in RETRIED or not self.retries_broken_calls:
                    raise
                await self._drop_idle_connections()
                return await self.scripts.run(script, _repeat(script, keys_), args)

    async def _change(self, script: str, qk: keys.QueueKeys, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a state-changing script with a new operation id (its last argument, and the operations key of its
        window its last key): a retry of the call replays."""
        op_keys, op_id = self._operation(qk)
        return await self._run(script, [*keys_, *op_keys], [*args, op_id])

    def _operation(self, qk: keys.QueueKeys) -> tuple[list[str], str]:
        """A new operation id (unique per call), and the key of the hash of its window (in the queue's hash slot) as a
        first attempt sends it: once, as nothing can be stored under a new id yet; twice where the client may repeat
        a call by itself (then every attempt must look for a reply to replay: see _lib.lua). A retry keeps both."""
        ops = qk.operations(int(time.time()) // OP_WINDOW_S)
        return ([ops] if self.retries_broken_calls else [ops, ops]), f"{self._op_prefix}{next(self._op_counter):x}"

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` (a read, or a write whose repeat is harmless), once more on a fresh connection if it broke."""
        with backend_errors(self.name):
            try:
                return await call()
            except NOT_BROKEN:
                raise
            except BROKEN:
                if not self.retries_broken_calls:
                    raise
                await self._drop_idle_connections()
                return await call()

    async def _drop_idle_connections(self) -> None:
        """One pooled connection broke: the idle others most likely did too (the engine restarted), so the
        next calls, the retry among them, connect afresh. A cluster client reconnects by itself."""
        if isinstance(self.client, Redis):
            with contextlib.suppress(*BROKEN):  # closing a dead socket may complain; it is closed all the same
                await self.client.connection_pool.disconnect(inuse_connections=False)

    async def _index(self, *, listed: Sequence[str] = (), timer: tuple[str, int] | None = None) -> None:
        """Follow-up writes to the cross-slot indexes (registry, timers). Only ever additions (and a lower
        deadline): an entry written late or twice is harmless, so they are retried freely; removals go
        through unlist and the reaper."""

        async def write() -> None:
            for queue in listed:
                await self.client.zadd(keys.QUEUES, {queue: 0})
            if timer is not None:
                await self.client.zadd(keys.TIMERS, {timer[0]: timer[1]}, lt=True)

        await self._retrying(write)

    async def _add_group(
        self,
        qk: keys.QueueKeys,
        values: Sequence[str],
        group: str,
        ttl_ms: int,
        idempotency_key: str | None,
        idempotency_window_ms: int,
        attributes: Sequence[str] | None,
    ) -> AddResult:
        """add() of messages of one message group (add_group.lua; no priority, no delay)."""
        idem_key = qk.idempotency(idempotency_key) if idempotency_key else qk.meta
        window = idempotency_window_ms if idempotency_key else 0
        extra = ("1", *values, *attributes) if attributes is not None else ("0", *values)
        args = [qk.queue, qk.channel, group, ttl_ms, window, self.key_base, *extra]
        first, last, listed, timer, duplicate = await self._change("add_group", qk, [*qk.message_keys, idem_key], args)
        if listed or timer >= 0:
            await self._index(listed=[qk.queue] if listed else (), timer=(qk.queue, timer) if timer >= 0 else None)
        return AddResult(first=first, last=last, duplicate=bool(duplicate))

    # -- messages ---------------------------------------------------------------------------

    async def add(
        self,
        queue: str,
        values: Sequence[str],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        ttl_ms: int = 0,
        group: str | None = None,
        idempotency_key: str | None = None,
        idempotency_window_ms: int = 300_000,
        attributes: Sequence[str] | None = None,
    ) -> AddResult:
        qk = keys.queue_keys(queue)
        if group is not None:  # message groups: always their own script, never a batch fast path
            return await self._add_group(qk, values, group, ttl_ms, idempotency_key, idempotency_window_ms, attributes)
        idem_key = qk.idempotency(idempotency_key) if idempotency_key else qk.meta
        window = idempotency_window_ms if idempotency_key else 0
        extra = ("1", *values, *attributes) if attributes is not None else ("0", *values)
        args = [queue, qk.channel, priority, delay_ms, ttl_ms, window, self.key_base, *extra]
        plain = not (priority or delay_ms or ttl_ms or idempotency_key or attributes)  # any other option: add.lua
        if plain and self._plain_batches and len(values) >= PLAIN_BATCH_MIN:
            first, last, listed = await self._plain_add(qk, [*qk.message_keys, idem_key], args, values)
            if listed:
                await self._index(listed=[queue])
            return AddResult(first=first, last=last, duplicate=False)
        first, last, listed, timer, duplicate = await self._change("add", qk, [*qk.message_keys, idem_key], args)
        if listed or timer >= 0:
            await self._index(listed=[queue] if listed else (), timer=(queue, timer) if timer >= 0 else None)
        return AddResult(first=first, last=last, duplicate=bool(duplicate))

    async def _plain_add(
        self, qk: keys.QueueKeys, keys_: Sequence[str], args: Sequence[Any], values: Sequence[str]
    ) -> tuple[int, int, int]:
        """A plain batch in MULTI/EXEC (plain_add.py). A write whose connection broke is repeated as add.lua with the
        same operation id and keys: it replays the record if the transaction ran, and adds once if it did not."""
        client = cast(Redis, self.client)
        op_keys, op_id = self._operation(qk)
        with backend_errors(self.name):
            try:
                first, order = await plain_add.reserve(client, qk, len(values), self.key_base)
                listed = await plain_add.write(client, qk, values, first, order, (op_keys[0], op_id))
                return first, first + len(values) - 1, int(listed)
            except NOT_BROKEN:
                raise
            except BROKEN:
                await self._drop_idle_connections()
        # outside the first `with`: the retry gets its own deadline check and error translation
        with backend_errors(self.name):
            reply = await self.scripts.run("add", _repeat("add", [*keys_, *op_keys]), [*args, op_id])
        return int(reply[0]), int(reply[1]), int(reply[2])

    async def pop(self, queue: str, mode: PopMode, count: int = 1, lease_ms: int = 0) -> PopResult:
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        args = [queue, dead_name, mode.value, count, lease_ms]
        reply = await self._delivering("pop", queue, qk, dead_keys, args)
        status, dead_listed, timer = reply[0], reply[1], reply[2]
        if dead_listed or timer >= 0:
            await self._index(listed=[dead_name] if dead_listed else (), timer=(queue, timer) if timer >= 0 else None)
        rest = reply[3:]
        messages = [Message(queue, int(rest[i]), rest[i + 1], int(rest[i + 2])) for i in range(0, len(rest), 3)]
        return PopResult(stopped=status == "stop", messages=messages)

    async def _delivering(
        self, script: str, queue: str, qk: keys.QueueKeys, dead_keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """A delivering script (pop, ack_lease): the dead-letter queue's nine keys go only with the calls of a queue
        seen with max_deliveries; another queue's call answers 'dead_keys' (changing nothing) and is sent again."""
        if queue in self._dead_lettering:
            return await self._change(script, qk, [*qk.message_keys, *dead_keys], args)
        reply = await self._change(script, qk, qk.message_keys, args)
        if reply[0] == "dead_keys":
            self._dead_lettering.add(queue)
            reply = await self._change(script, qk, [*qk.message_keys, *dead_keys], args)
        return reply

    async def ack_lease(
        self, queue: str, acks: Sequence[tuple[int, int | None]], count: int, lease_ms: int
    ) -> PopResult:
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        args: list[Any] = [queue, dead_name, count, lease_ms]
        for n, expected in acks:
            args += (n, "" if expected is None else expected)
        reply = await self._delivering("ack_lease", queue, qk, dead_keys, args)
        status, dead_listed, timer, n_acks = reply[0], reply[1], reply[2], reply[3]
        if dead_listed or timer >= 0:
            await self._index(listed=[dead_name] if dead_listed else (), timer=(queue, timer) if timer >= 0 else None)
        cut = 4 + 2 * n_acks
        acked = [SettleResult(SettleOutcome(reply[i]), int(reply[i + 1])) for i in range(4, cut, 2)]
        rest = reply[cut:]
        messages = [Message(queue, int(rest[i]), rest[i + 1], int(rest[i + 2])) for i in range(0, len(rest), 3)]
        return PopResult(stopped=status == "stop", messages=messages, acked=acked)

    async def settle(
        self, queue: str, action: SettleAction, n: int, *, expected_count: int | None = None, ms: int = 0
    ) -> SettleResult:
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        expected = "" if expected_count is None else expected_count
        args = [queue, dead_name, qk.channel, action.value, n, expected, ms]
        reply = await self._change("settle", qk, _settle_keys(qk, action, dead_keys), args)
        return await self._settled(queue, dead_name, reply)

    async def settle_many(
        self, queue: str, action: SettleAction, items: Sequence[tuple[int, int]]
    ) -> list[SettleResult]:
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        calls = []
        for n, count in items:
            op_keys, op_id = self._operation(qk)
            calls.append(
                (
                    [*_settle_keys(qk, action, dead_keys), *op_keys],
                    [queue, dead_name, qk.channel, action.value, n, count, 0, op_id],
                )
            )
        with backend_errors(self.name):
            replies = await self.scripts.run_many("settle", calls)
            broken = any(isinstance(reply, BROKEN) and not isinstance(reply, NOT_BROKEN) for reply in replies)
            if broken and self.retries_broken_calls:
                # the same operation ids: the calls that had run replay their replies
                await self._drop_idle_connections()
                replies = await self.scripts.run_many("settle", [(_repeat("settle", k), a) for k, a in calls])
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return [await self._settled(queue, dead_name, reply) for reply in replies]

    async def _settled(self, queue: str, dead_name: str, reply: Sequence[Any]) -> SettleResult:
        outcome, count, dead_listed, timer = reply
        if dead_listed or timer >= 0:
            await self._index(listed=[dead_name] if dead_listed else (), timer=(queue, timer) if timer >= 0 else None)
        return SettleResult(SettleOutcome(outcome), int(count))

    async def delete(self, queue: str, n: int) -> bool:
        qk = keys.queue_keys(queue)
        return bool(await self._change("delete", qk, qk.message_keys, [n]))

    async def purge(self, queue: str) -> int:
        qk = keys.queue_keys(queue)
        removed = int(await self._change("purge", qk, [*qk.message_keys, qk.history], [qk.channel]))
        # not a plain ZREM: an add since the script may have listed it; harmless to repeat
        await self._retrying(lambda: unlist(self.client, queue))
        return removed

    async def redrive(self, dead_queue: str, limit: int = 10_000) -> int:
        target = keys.hash_tag(dead_queue)
        dk, tk = keys.queue_keys(dead_queue), keys.queue_keys(target)
        moved, listed = await self._change("redrive", dk, [*dk.message_keys, *tk.message_keys], [tk.channel, limit])
        if listed:
            await self._index(listed=[target])
        return int(moved)

    async def recent(self, queue: str, limit: int, max_bytes: int | None = None) -> Recent:
        args = [limit, -1 if max_bytes is None else max_bytes]
        truncated, *rest = await self._run("peek_recent", keys.queue_keys(queue).message_keys, args)
        messages = [Message(queue, int(rest[i]), rest[i + 1], int(rest[i + 2])) for i in range(0, len(rest), 3)]
        return Recent(messages, bool(truncated))

    async def message_attributes(self, queue: str, ns: Sequence[int]) -> list[str | None]:
        if not ns:
            return []
        origin = keys.queue_keys(queue).origin
        fields = [f"a{n}" for n in ns]
        return cast(list[str | None], await self._retrying(lambda: self.client.hmget(origin, fields)))

    # -- settings and statistics --------------------------------------------------------------

    async def attributes(self, queue: str) -> str | None:
        meta = keys.queue_keys(queue).meta
        return cast(str | None, await self._retrying(lambda: self.client.hget(meta, "attributes")))

    async def set_attributes(self, queue: str, document: str | None) -> None:
        meta = keys.queue_keys(queue).meta
        if document is None:
            await self._retrying(lambda: self.client.hdel(meta, "attributes"))
            return
        await self._retrying(lambda: self.client.hset(meta, mapping={"attributes": document, "listed": "1"}))
        await self._index(listed=[queue])

    async def settings(self, queue: str) -> QueueSettings:
        meta = keys.queue_keys(queue).meta
        values = await self._retrying(lambda: self.client.hmget(meta, ["policy", "status", "max_deliveries"]))
        return _settings(cast(list[str | None], values))

    async def update_settings(
        self,
        queue: str,
        *,
        policy: str | None = None,
        status: str | None = None,
        max_deliveries: int | None = None,
    ) -> QueueSettings:
        if max_deliveries is not None and max_deliveries < 0:
            raise InvalidParameter("max_deliveries must be 0 or more")
        qk = keys.queue_keys(queue)
        args = [qk.channel, policy or "", status or "", "" if max_deliveries is None else max_deliveries]
        return _settings(await self._run("settings", [qk.meta], args))

    async def list_queues(self) -> list[str]:
        async def read() -> list[str]:
            await self._fold_legacy_registry()
            return cast(list[str], await self.client.zrange(keys.QUEUES, 0, -1))

        return await self._retrying(read)

    async def list_page(self, after: str | None, limit: int) -> list[str]:
        start = "-" if after is None else "(" + after

        async def read() -> list[str]:
            await self._fold_legacy_registry()
            return cast(list[str], await self.client.zrangebylex(keys.QUEUES, start, "+", start=0, num=limit))

        return await self._retrying(read)

    async def _fold_legacy_registry(self, *, again: bool = False) -> None:
        """Move the names of the registry earlier versions kept (a SET, which cannot be read in name order) into
        the ordered one: once per process before its first listing, and after each pass of the index repair, which
        also catches names that processes of the earlier version add during a rolling upgrade."""
        if self._legacy_folded and not again:
            return
        while names := cast(list[str], await self.client.srandmember(keys.LEGACY_QUEUES, 500)):
            await self.client.zadd(keys.QUEUES, dict.fromkeys(names, 0))
            await self.client.srem(keys.LEGACY_QUEUES, *names)  # after the ZADD: a crash in between loses none
        self._legacy_folded = True

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        if not queues:
            return []
        batches = self._stats_batches(queues)
        calls = [_stats_call(batch) for batch in batches]
        replies = await self._retrying(lambda: self.scripts.run_pipelined("stats", calls))
        found = {
            queue: _stats(queue, reply)
            for batch, batch_replies in zip(batches, replies, strict=True)
            for queue, reply in zip(batch, batch_replies, strict=True)
        }
        return [found[queue] for queue in queues]

    def _stats_batches(self, queues: Sequence[str]) -> list[Sequence[str]]:
        """The stats script calls of a page, in one pipeline: STATS_BATCH queues each (one node holds them all;
        a page of a thousand queues costs one round trip and two short scripts)."""
        return [queues[i : i + STATS_BATCH] for i in range(0, len(queues), STATS_BATCH)]

    # -- timers -------------------------------------------------------------------------------

    async def reap(self, limit: int = 100, interval_ms: int = 200) -> int:
        with backend_errors(self.name):
            # One process per node sweeps per interval; the sweep itself is idempotent, this saves work.
            if not await self.client.set(keys.REAPER_LOCK, self._token, nx=True, px=interval_ms):
                return _not_cancelled(0)
            now_s, now_us = await self.client.time()
            now = now_s * 1000 + now_us // 1000
            due = cast(
                list[tuple[str, float]],
                await self.client.zrangebyscore(keys.TIMERS, "-inf", now, start=0, num=limit, withscores=True),
            )
            moved = 0
            for queue, seen in due:
                qk = keys.queue_keys(queue)
                dead_keys, dead_name = _dead_args(queue)
                # One script call takes back at most 200 leases: when many expire together (a consumer
                # fleet died), keep going while it makes progress, in short scripts, instead of 200 per
                # sweep (minutes for 100,000 leases).
                for _ in range(REAP_ROUNDS):
                    n, dead_listed, next_due = await self.scripts.run(
                        "reap", [*qk.message_keys, *dead_keys], [queue, dead_name, qk.channel]
                    )
                    moved += n
                    if dead_listed:
                        await self.client.zadd(keys.QUEUES, {dead_name: 0})
                    if n == 0 or not 0 <= next_due <= now:
                        break
                if await self.scripts.run("timer_cas", [keys.TIMERS], [queue, int(seen), next_due]):
                    await self._recheck_timer(queue, next_due)
            self._sweeps += 1
            if self._sweeps % REPAIR_EVERY == 1:
                if (await self.index_repair.step()).wrapped:
                    await self._fold_legacy_registry(again=True)
        return _not_cancelled(moved)

    async def _recheck_timer(self, queue: str, written: int) -> None:
        """After the reaper raised or removed a queue's timer entry, lower it to the queue's deadline read now.

        A script that set an earlier timer after the reap script and before that write wrote its entry first,
        with ZADD LT, which could not lower an entry that was still due: the reaper's write then dropped it.
        Reading the deadline after the write catches such a timer; one set after this read has its own
        entry written after ours."""
        deadline = int(await self.scripts.run("deadline", keys.queue_keys(queue).message_keys, []))
        if deadline >= 0 and deadline != written:
            await self.client.zadd(keys.TIMERS, {queue: deadline}, lt=True)

    # -- streaming ----------------------------------------------------------------------------

    async def broadcast(self, queue: str, limit: int, history: int) -> StreamResult:
        if self.events.down:  # this process would miss the event, and its consumers the messages
            return StreamResult(StreamStatus.NO_CONSUMERS, 0)
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        status, count, dead_listed = await self._run(
            "broadcast", [*qk.message_keys, *dead_keys, qk.history], [queue, dead_name, qk.channel, limit, history]
        )
        if dead_listed:
            await self._index(listed=[dead_name])
        return _not_cancelled(StreamResult(StreamStatus(status), int(count)))

    async def assign(self, queue: str, limit: int, inflight_ms: int, grace_ms: int = 0) -> StreamResult:
        if self.events.down:  # the assignments would reach no one here: they would wait out their lease
            return StreamResult(StreamStatus.NO_CONSUMERS, 0)
        qk = keys.queue_keys(queue)
        dead_keys, dead_name = _dead_args(queue)
        status, count, dead_listed, timer = await self._run(
            "assign",
            [*qk.message_keys, *dead_keys, qk.consumers],
            [queue, dead_name, qk.channel, limit, inflight_ms, grace_ms],
        )
        if dead_listed or timer >= 0:
            await self._index(listed=[dead_name] if dead_listed else (), timer=(queue, timer) if timer >= 0 else None)
        return _not_cancelled(StreamResult(StreamStatus(status), int(count)))

    async def touch_consumers(self, queue: str, ids: Sequence[str], ttl_ms: int) -> int:
        return int((await self._presence(queue, ttl_ms, "add", ids))[0])

    async def heartbeat(self, queue: str, ids: Sequence[str], ttl_ms: int, held: Sequence[Hold]) -> list[int]:
        return _not_cancelled([int(n) for n in (await self._presence(queue, ttl_ms, "add", ids, held))[1:]])

    async def drop_consumers(self, queue: str, ids: Sequence[str]) -> None:
        await self._presence(queue, 0, "remove", ids)

    async def _presence(
        self, queue: str, ttl_ms: int, action: str, ids: Sequence[str], held: Sequence[Hold] = ()
    ) -> list[Any]:
        qk = keys.queue_keys(queue)
        args: list[Any] = [ttl_ms, action, len(ids), *ids]
        for hold in held:
            args += hold
        return cast(list[Any], await self._run("presence", [qk.consumers, qk.leased, qk.counts], args))

    async def history(
        self, queue: str, limit: int, *, max_bytes: int | None = None, since: str | None = None, oldest_ms: int = 0
    ) -> History:
        args = [limit, -1 if max_bytes is None else max_bytes, since or "", oldest_ms]
        since_ms, *items = await self._run("history", [keys.queue_keys(queue).history], args)
        entries = []
        for item in items:
            data = orjson.loads(item)
            size = len(item.encode())
            entries.append(HistoryEntry(data["key"], data["value"], int(data["count"]), int(data["t"]), size))
        return History(entries, None if since_ms < 0 else int(since_ms))

    # -- events -------------------------------------------------------------------------------

    async def publish(self, queue: str, payload: str) -> None:
        with backend_errors(self.name):
            await self.client.spublish(keys.queue_keys(queue).channel, payload)

    async def subscribe(self, queue: str) -> None:
        await self.events.subscribe(queue)

    async def unsubscribe(self, queue: str) -> None:
        await self.events.unsubscribe(queue)

    def on_event(self, handler: EventHandler) -> None:
        self.events.on_event(handler)

    # -- tokens (stored hashed by restmq.core.tokens; revocation marks outlive records: see Store) ----

    async def save_token(self, token_id: str, record: str) -> None:
        with backend_errors(self.name):
            await self.client.hset(keys.TOKENS, token_id, record)

    async def forget_token(self, token_id: str) -> None:
        """Drop a record without marking it revoked: a ring create undone (its token was never shown)."""
        with backend_errors(self.name):
            await self.client.hdel(keys.TOKENS, token_id)

    async def token_states(self, token_ids: Sequence[str] | None = None) -> TokenStates:
        """Records and revocation marks of `token_ids`, or of every token. The mark is read first: a revoke
        landing between the two reads has already dropped the record."""
        return await self._retrying(lambda: self._read_token_states(token_ids))

    async def _read_token_states(self, token_ids: Sequence[str] | None) -> TokenStates:
        if token_ids is None:
            revoked = cast(dict[str, str], await self.client.hgetall(keys.REVOKED_TOKENS))
            records = cast(dict[str, str], await self.client.hgetall(keys.TOKENS))
            return TokenStates(records, revoked)
        ids = list(token_ids)
        marks = cast(list[str | None], await self.client.hmget(keys.REVOKED_TOKENS, ids))
        found = cast(list[str | None], await self.client.hmget(keys.TOKENS, ids))
        return TokenStates(
            {i: r for i, r in zip(ids, found, strict=True) if r is not None},
            {i: m for i, m in zip(ids, marks, strict=True) if m is not None},
        )

    async def mark_revoked(self, revoked: dict[str, str]) -> int:
        """Mark tokens revoked (id -> revocation time), then drop their records; how many records there were.
        Two commands in this order, not a transaction: the two hashes may sit on different cluster slots."""
        with backend_errors(self.name):
            await self.client.hset(keys.REVOKED_TOKENS, items=[field for pair in revoked.items() for field in pair])
            return int(await self.client.hdel(keys.TOKENS, *revoked))

    async def load_token(self, token_id: str) -> str | None:
        return (await self.load_tokens([token_id])).get(token_id)

    async def load_tokens(self, token_ids: Sequence[str]) -> dict[str, str]:
        return (await self.token_states(token_ids)).valid() if token_ids else {}

    async def list_tokens(self) -> dict[str, str]:
        return (await self.token_states()).valid()

    async def delete_token(self, token_id: str) -> bool:
        return await self.mark_revoked({token_id: revocation_time()}) > 0

    async def ping(self) -> None:
        try:
            await self._retrying(self._ping_once)
        except BackendUnavailable:
            self._up = False
            raise
        self._up = True

    async def _ping_once(self) -> None:
        await self.client.ping()

    def node_states(self) -> dict[str, str]:
        return {self.name: "up" if self._up else "down"}

    async def close(self) -> None:
        await self.events.close()
        await self.client.aclose()


def _stats(queue: str, reply: list[Any]) -> QueueStats:
    ready, delayed, leased, consumers, dead, meta_flat = reply
    meta = dict(zip(meta_flat[::2], meta_flat[1::2], strict=True))
    settings = _known_settings(meta.get("policy"), meta.get("status"), meta.get("max_deliveries"))
    counters = {name: int(meta.get(field, 0)) for field, name in COUNTERS.items()}
    return QueueStats(queue, ready, delayed, leased, dead, consumers, settings, counters)


@functools.lru_cache(maxsize=256)
def _known_settings(policy: str | None, status: str | None, max_deliveries: str | None) -> QueueSettings:
    """QueueSettings are frozen: the few combinations in use are parsed once (a page of statistics is a thousand)."""
    return _settings([policy, status, max_deliveries])
