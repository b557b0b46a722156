"""The roundrobin heartbeat on every backend mode (issue 14, item 5): a process's consumers and the messages
it holds in flight last as long as it beats (`Store.heartbeat`); when it stops, both are given up within the
presence ttl, on one node, on a ring (each held message renewed on the node that numbered it) and on Redis
Cluster (every key of the heartbeat under the queue's hash tag)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from restmq.core.model import Hold, SettleAction, SettleOutcome, StreamStatus
from restmq.core.store import Store
from restmq.storage.factory import open_store
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration

TTL_MS = 1000
GRACE_MS = 500  # holds outlive the presence by this much
INFLIGHT_MS = 30_000  # far beyond the test: only the heartbeat decides
QUEUE = "beats"
ALIVE, DEAD = "alive00000001/1/0", "dead000000001/1/0"


@pytest.fixture(params=["node", "ring", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    from tests.helpers.topology import flush_cluster, flush_engines

    if request.param == "node":
        engine = request.getfixturevalue("engine")
        flush_engines([engine])
        opened = open_store([engine.url])
    elif request.param == "ring":
        ring = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        opened = open_store([e.url for e in ring])
    else:
        cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        opened = open_store([], cluster.url)
    try:
        yield opened
    finally:
        await opened.close()


class Assignments:
    """The assignment events of QUEUE: message number -> (consumer, count) of its latest delivery."""

    def __init__(self) -> None:
        self.latest: dict[int, tuple[str, int]] = {}

    def __call__(self, queue: str, event: str) -> None:
        if queue == QUEUE and event.startswith("r"):
            for item in orjson.loads(event[1:]):
                self.latest[int(item["key"].rsplit(":", 1)[1])] = (item["to"], item["count"])

    def of(self, consumer: str) -> dict[int, int]:
        return {n: count for n, (to, count) in self.latest.items() if to == consumer}


@contextlib.asynccontextmanager
async def beating(store: Store, consumer: str, held: dict[int, int]) -> AsyncIterator[list[int]]:
    """`consumer`'s process beating every TTL/4 while the block runs, holding `held` (n -> count); yields the
    numbers the heartbeat reported gone."""
    gone: list[int] = []

    async def beat() -> None:
        while True:
            holds = [Hold(n, count, TTL_MS + GRACE_MS) for n, count in held.items()]
            for n in await store.heartbeat(QUEUE, [consumer], TTL_MS, holds):
                gone.append(n)
                held.pop(n, None)
            await asyncio.sleep(TTL_MS / 4000)  # the heartbeat's pace, as a server process beats

    task = asyncio.create_task(beat())
    try:
        yield gone
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_process_that_stops_beating_loses_its_consumers_and_what_it_held(store: Store) -> None:
    events = Assignments()
    store.on_event(events)
    await store.subscribe(QUEUE)
    await store.update_settings(QUEUE, policy="roundrobin")
    assert await store.touch_consumers(QUEUE, [ALIVE, DEAD], TTL_MS) == 2
    for i in range(6):
        await store.add(QUEUE, [f"v{i}"])

    async def assigned() -> int:  # once the event subscription is up (a dispatcher waits for it the same way)
        result = await store.assign(QUEUE, 100, INFLIGHT_MS, GRACE_MS)
        assert result.status in (StreamStatus.OK, StreamStatus.NO_CONSUMERS), result
        return result.count

    assert await wait_for(assigned, 10, 0.05, "the first assignment") == 6
    await wait_for(_seen(events, 6), 10, what="the assignment event")
    kept, lost = events.of(ALIVE), events.of(DEAD)
    assert len(kept) == len(lost) == 3

    async with beating(store, ALIVE, dict(kept)) as gone:
        # DEAD never beats: within about its ttl it leaves the rotation and what it held comes back to ALIVE.
        async def returned() -> bool:
            await store.assign(QUEUE, 100, INFLIGHT_MS, GRACE_MS)
            return set(events.of(ALIVE)) == set(kept) | set(lost)

        await wait_for(returned, 10, 0.05, "the dead process's messages to reach the live consumer")
        assert all(events.latest[n] == (ALIVE, 2) for n in lost)  # delivered a second time
        assert all(events.latest[n] == (ALIVE, 1) for n in kept)  # ALIVE's own were never taken back
        stats = (await store.stats([QUEUE]))[0]
        assert (stats.consumers, stats.length, stats.leased) == (1, 0, 6)

        # ALIVE's holds outlive many ttls while it beats; an ack elsewhere is reported back as gone.
        first = min(kept)
        settled = await store.settle(QUEUE, SettleAction.ACK, first, expected_count=1)
        assert settled.outcome is SettleOutcome.OK

        async def reported() -> bool:
            return first in gone

        await wait_for(reported, 10, 0.05, "the acked message to be reported gone")
        assert gone == [first]
    assert (await store.stats([QUEUE]))[0].leased == 5
    # The ALIVE process stops too: what it still holds returns within its ttl.

    async def all_back() -> bool:
        await store.reap()
        current = (await store.stats([QUEUE]))[0]
        return current.leased == 0 and current.length == 5

    await wait_for(all_back, 10, 0.05, "every held message back in the queue")
    assert (await store.stats([QUEUE]))[0].consumers == 0


def _seen(events: Assignments, n: int) -> Any:
    async def enough() -> bool:
        return len(events.latest) >= n

    return enough
