"""ClusterStore: RedisStore over Redis Cluster.

Every queue operation already touches one hash slot, so the scripts run unchanged; what differs
is the client, reading shard channels from every primary, and batching per slot instead of one
pipeline. Long-polls and streams wait on pub/sub events, not blocking commands, so waiting
consumers hold no pooled connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from restmq.core.model import QueueStats
from restmq.storage import keys
from restmq.storage.errors import backend_errors
from restmq.storage.events import EventListener
from restmq.storage.node import RedisStore, _stats


def connect_cluster(url: str, *, max_connections: int = 200) -> RedisCluster:
    return RedisCluster.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        max_connections=max_connections,
    )


async def _read_sharded(pubsub: Any) -> Any:
    return await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)


class ClusterStore(RedisStore):
    def __init__(self, client: RedisCluster, *, name: str) -> None:
        super().__init__(client, name=name)
        self.events = EventListener(self._make_pubsub, lambda q: keys.queue_keys(q).channel, name, _read_sharded)

    @classmethod
    def from_cluster_url(cls, url: str) -> ClusterStore:
        return cls(connect_cluster(url), name=url)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        async def one(queue: str) -> QueueStats:
            qk = keys.queue_keys(queue)
            dead_ready = keys.queue_keys(keys.dead_letter_queue(queue)).ready
            return _stats(queue, await self.scripts.run("stats", [*qk.message_keys, qk.consumers, dead_ready], []))

        results: list[QueueStats] = []
        with backend_errors(self.name):
            for start in range(0, len(queues), 500):  # bounded concurrency: pools stay small
                results.extend(await asyncio.gather(*(one(q) for q in queues[start : start + 500])))
        return results
