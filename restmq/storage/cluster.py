"""ClusterStore: RedisStore over Redis Cluster.

Every queue operation already touches one hash slot, so the scripts run unchanged; what differs
is the client, reading shard channels from every primary, and pipelines that the client splits
into one batch per node. Long-polls and streams wait on pub/sub events, not blocking commands, so waiting
consumers hold no pooled connections.
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from restmq.errors import BackendUnavailable
from restmq.storage import keys
from restmq.storage.events import EventListener
from restmq.storage.index_repair import SCAN_COUNT, IndexRepair, queues_of
from restmq.storage.node import STATS_BATCH, RedisStore
from restmq.storage.scripts import Scripts
from restmq.storage.urls import redact


class _WarmCluster(RedisCluster):
    """A RedisCluster that sends one command alone before letting concurrent commands through.

    When a fresh redis-py 8.1 cluster client receives its first commands concurrently, it reconnects
    its connections under commands still using them: a storm of "Connection closed by server" and
    "'NoneType' object has no attribute 'writelines'" errors (503s) that feeds itself for seconds.
    One command first (it loads the slot map) avoids it."""

    _warm = False
    _warming: asyncio.Lock | None = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if not self._warm:
            if self._warming is None:
                self._warming = asyncio.Lock()
            async with self._warming:
                if not self._warm:
                    await super().execute_command("PING")
                    self._warm = True
        return await super().execute_command(*args, **kwargs)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        """An FCALL's slot from its first key, as redis-py does for EVALSHA: its own way asks the server for the
        keys of every FCALL (COMMAND GETKEYS), a round trip per call. A script's keys always share one slot."""
        if command == "FCALL" and int(args[1]) > 0:
            return self.keyslot(args[2])
        return await super()._determine_slot(command, *args)


def connect_cluster(url: str, *, max_connections: int = 200) -> RedisCluster:
    return _WarmCluster.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        max_connections=max_connections,
    )


async def _read_sharded(pubsub: Any) -> Any:
    """The next shard-channel message from any primary.

    ClusterPubSub.get_sharded_message() polls its per-primary connections one after the other, each
    for the whole timeout: an event on one primary waited up to a second per other primary. Read them
    all at once instead and keep what else arrived for the next calls (cancelling a pending read is as
    safe as its own timeout: redis-py keeps a partial reply in the parser)."""
    pending: collections.deque[Any] = pubsub.__dict__.setdefault("_restmq_pending", collections.deque())
    if pending:
        return pending.popleft()
    names = list(pubsub.node_pubsub_mapping)
    if not names:  # asked to read with channels wanted: a subscription got lost, reconnect
        raise ConnectionError("no shard subscription is open")
    if len(names) == 1:
        return await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
    reads = [
        asyncio.ensure_future(
            pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0, target_node=_NodeName(name))
        )
        for name in names
    ]
    try:
        await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for read in reads:
            read.cancel()
        results = await asyncio.gather(*reads, return_exceptions=True)
    error: BaseException | None = None
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            continue
        if isinstance(result, BaseException):
            error = error or result
        elif result is not None:
            pending.append(result)
    if pending:
        return pending.popleft()
    if error is not None:
        raise error
    return None


def _raised_in_redis_py(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}redis{os.sep}" in tb.tb_frame.f_code.co_filename


@dataclass(frozen=True)
class _NodeName:
    """What get_sharded_message(target_node=...) looks at: the node's name (host:port)."""

    name: str


class ClusterIndexRepair(IndexRepair):
    """The index repair over every primary: each has its own keyspace, and its own SCAN cursor."""

    def __init__(self, client: RedisCluster, scripts: Scripts) -> None:
        super().__init__(client, scripts)
        self.cluster = client
        self._cursors: dict[str, int] = {}

    def _batches(self, queues: list[str]) -> list[list[str]]:
        """A script runs in one hash slot: one call per slot (the pipeline still sends one batch per node)."""
        by_slot: dict[int, list[str]] = {}
        for queue in queues:
            by_slot.setdefault(key_slot(keys.uncached_queue_keys(queue).meta.encode()), []).append(queue)
        return list(by_slot.values())

    async def _scan(self) -> tuple[list[str], bool]:
        primaries = self.cluster.get_primaries()
        # a primary gone (failed over, removed) takes its cursor along; a new one starts its pass at 0
        self._cursors = {node.name: self._cursors.get(node.name, 0) for node in primaries}
        found: list[str] = []
        wrapped = False
        for node in primaries:
            # with target_nodes, redis-py's cluster client answers ({node name: cursor}, keys)
            cursors, names = cast(
                tuple[dict[str, int], list[str]],
                await self.cluster.scan(
                    self._cursors[node.name], match=keys.META_PATTERN, count=SCAN_COUNT, target_nodes=node
                ),
            )
            self._cursors[node.name] = cursor = int(cursors[node.name])
            wrapped = wrapped or cursor == 0
            found += names
        return queues_of(found), wrapped


class ClusterStore(RedisStore):
    # The cluster client retries a broken command itself (3 times, re-reading the slot map in between);
    # the scripts' operation ids make those retries as safe as RedisStore's own.
    retries_broken_calls = False

    def __init__(self, client: RedisCluster, *, name: str) -> None:
        super().__init__(client, name=name)
        self.events = EventListener(self._make_pubsub, lambda q: keys.queue_keys(q).channel, name, _read_sharded)
        self.index_repair = ClusterIndexRepair(client, self.scripts)

    @classmethod
    def from_cluster_url(cls, url: str) -> ClusterStore:
        return cls(connect_cluster(url), name=redact(url))

    async def _run(self, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await super()._run(script, keys_, args)
        except AttributeError as exc:
            # redis-py's cluster client disconnects a node's connections when a command on that node fails;
            # a command already using one then fails inside redis-py ("'NoneType' object has no attribute
            # 'writelines'") while a failover goes on. The backend is unavailable, not the server broken.
            if not _raised_in_redis_py(exc):
                raise
            raise BackendUnavailable(f"backend {self.name} unavailable: {exc}") from exc

    def _stats_batches(self, queues: Sequence[str]) -> list[Sequence[str]]:
        """A script runs in one hash slot: one call per slot (the cluster pipeline still sends one batch per
        node)."""
        by_slot: dict[int, list[str]] = {}
        for queue in queues:
            by_slot.setdefault(key_slot(keys.queue_keys(queue).meta.encode()), []).append(queue)
        return [group[i : i + STATS_BATCH] for group in by_slot.values() for i in range(0, len(group), STATS_BATCH)]
