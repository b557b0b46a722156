"""Background repair of the two cross-slot indexes: the queue registry and the reaper's timer index.

Both are written right after the script that changes a queue (they live in other hash slots), so a process
that dies in between leaves a queue holding messages out of the registry, or a timer the reaper never visits.
The truth is in each queue's own keys: its meta hash's `listed` flag and its timer sets. A step SCANs a few
hundred keys of every node (every primary of a Redis Cluster) for meta hashes, reads those queues' truth with
one script (one per hash slot on a cluster, pipelined) and writes what the indexes miss. The reaper runs a step
every other sweep (about two a second), so a pass costs the engine a little at a time, whatever the number of
queues: well under a millisecond of engine time per step of 300 keys.

The repair only adds: a registry entry it writes for a queue purged meanwhile is taken out again the way purge
does it (remove, then read the flag again), and a timer entry can only be lowered (ZADD LT), which at worst
makes the reaper visit a queue with nothing due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from restmq.storage import keys
from restmq.storage.scripts import Client, Scripts

log = logging.getLogger("restmq.storage")

SCAN_COUNT = 300  # keys the engine looks at per SCAN call: a bounded, short piece of work


@dataclass
class Repaired:
    """What one step restored, and whether a pass over some node's keyspace ended with it."""

    listed: list[str] = field(default_factory=list)
    timers: int = 0
    wrapped: bool = False


async def unlist(client: Client, queue: str) -> None:
    """Take `queue` out of the registry without losing the entry of an add that lists it meanwhile.

    Whoever sets the queue's `listed` flag writes the registry entry after its script. Removing first and
    reading the flag second is safe in every interleaving: a flag set before the read is seen here (the entry
    goes back), and one set after it is followed by its setter's own write, which comes after this removal.
    (Removing after the read, or without it, could drop the entry of an add that came between.)"""
    await client.zrem(keys.QUEUES, queue)
    if await client.hexists(keys.queue_keys(queue).meta, "listed"):
        await client.zadd(keys.QUEUES, {queue: 0})


class IndexRepair:
    """The repair's position in one node's keyspace (a single server, or a ring node)."""

    def __init__(self, client: Client, scripts: Scripts) -> None:
        self.client = client
        self.scripts = scripts
        self._cursor = 0

    async def step(self) -> Repaired:
        queues, wrapped = await self._scan()
        repaired = Repaired(wrapped=wrapped)
        if not queues:
            return repaired
        batches = self._batches(queues)
        replies = await self.scripts.run_pipelined("index_state", [(_state_keys(batch), []) for batch in batches])
        states = [
            (queue, flag, int(due))
            for batch, reply in zip(batches, replies, strict=True)
            for queue, (flag, due) in zip(batch, reply, strict=True)
        ]
        listed = [queue for queue, flag, _ in states if flag]
        deadlines = {queue: due for queue, _, due in states if due >= 0}
        repaired.listed = await self._relist(listed)
        if deadlines:
            repaired.timers = cast(int, await self.client.zadd(keys.TIMERS, deadlines, lt=True, ch=True))
        if repaired.listed or repaired.timers:
            log.info(
                "index repair: %d queue(s) listed again %s, %d timer entr(y/ies) restored",
                len(repaired.listed),
                repaired.listed[:10],
                repaired.timers,
            )
        return repaired

    async def _relist(self, listed: Sequence[str]) -> list[str]:
        """Put the queues of `listed` that the registry misses back in it."""
        if not listed:
            return []
        scores = cast(list[Any], await self.client.zmscore(keys.QUEUES, list(listed)))
        missing = [queue for queue, score in zip(listed, scores, strict=True) if score is None]
        if not missing:
            return []
        await self.client.zadd(keys.QUEUES, dict.fromkeys(missing, 0))
        for queue in missing:  # a purge since the flags were read: its queue must not stay listed by us
            if not await self.client.hexists(keys.queue_keys(queue).meta, "listed"):
                await unlist(self.client, queue)
        return missing

    def _batches(self, queues: list[str]) -> list[list[str]]:
        """The index_state calls of a step: one for all (a single server runs a script over any keys)."""
        return [queues]

    async def _scan(self) -> tuple[list[str], bool]:
        """The queues of the next meta hashes of this node, and whether its pass ended."""
        self._cursor, found = await self.client.scan(self._cursor, match=keys.META_PATTERN, count=SCAN_COUNT)
        return queues_of(cast(list[str], found)), self._cursor == 0


def queues_of(found: Sequence[str]) -> list[str]:
    return [queue for key in found if (queue := keys.queue_of_meta(key)) is not None]


def _state_keys(queues: Sequence[str]) -> list[str]:
    """KEYS of one index_state call: meta, delayed, leased and expires of each queue (built here, not through
    queue_keys: a walk over every queue would evict the hot queues from its cache)."""
    found = []
    for queue in queues:
        qk = keys.uncached_queue_keys(queue)
        found += [qk.meta, qk.delayed, qk.leased, qk.expires]
    return found
