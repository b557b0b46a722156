"""The consistent-hash ring over real nodes (SPEC section 1): spread, a node down and back, a node added.

Every test starts its own engines (they get stopped), so the session ring of the shared suite stays intact.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from restmq.storage.sharded import KEY_STRIDE
from tests.helpers.queues import add, drain
from tests.helpers.server import ServeProcess, free_port, run_app, serve
from tests.helpers.topology import engines, registered_queues, restart
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUEUES = [f"orders-{i:02}" for i in range(30)]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[EmbeddedEngine]]:
    with engines(tmp_path / "ring", 4) as started:
        yield started


async def drain_all(http: httpx.AsyncClient, queues: list[str]) -> collections.Counter[tuple[str, str]]:
    delivered: collections.Counter[tuple[str, str]] = collections.Counter()
    for queue in queues:
        for message in await drain(http, queue, 100):
            delivered[(queue, message["value"])] += 1
    return delivered


async def ready(http: httpx.AsyncClient) -> dict[str, Any]:
    reply = await http.get("/ready")
    body: dict[str, Any] = reply.json()
    body["code"] = reply.status_code
    return body


def owners(ring: list[EmbeddedEngine]) -> dict[str, int]:
    """queue -> index of the node whose registry lists it (each queue must be on exactly one node)."""
    found: dict[str, int] = {}
    for i, engine in enumerate(ring):
        for queue in registered_queues(engine):
            assert queue not in found, f"{queue} is on node {found[queue]} and node {i}"
            found[queue] = i
    return found


async def test_queues_spread_over_every_node(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    ring = nodes[:3]
    # the CLI form: repeated --redis and a comma list mixed
    args = ["--redis", ring[0].url, "--redis", f"{ring[1].url},{ring[2].url}"]
    with serve(args, tmp_path, "ring") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            keys = {queue: await add(http, queue, f"{queue}-v") for queue in QUEUES}
            body = await ready(http)
            assert body["code"] == 200 and body["nodes"] == {e.url: "up" for e in ring}

            found = owners(ring)
            assert set(found) == set(QUEUES)
            per_node = collections.Counter(found.values())
            assert all(per_node[i] > 0 for i in range(3)), per_node
            for queue, key in keys.items():  # node i numbers its messages from i * 10^12
                assert int(key.rsplit(":", 1)[1]) // KEY_STRIDE == found[queue], (queue, key)
            assert await drain_all(http, QUEUES) == collections.Counter((q, f"{q}-v") for q in QUEUES)


async def test_a_node_down_keeps_its_queues_writable_and_loses_nothing(nodes: list[EmbeddedEngine]) -> None:
    ring = nodes[:3]
    async with run_app(redis_urls=[e.url for e in ring]) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        expected: collections.Counter[tuple[str, str]] = collections.Counter()
        for queue in QUEUES:
            for i in range(3):
                await add(http, queue, f"before-{i}")
                expected[(queue, f"before-{i}")] += 1
        found = owners(ring)
        victim = 1
        owned = [q for q in QUEUES if found[q] == victim]
        assert owned, "node 1 owns none of the queues"

        ring[victim].stop()
        for queue in QUEUES:  # owned queues first hit the dead node, then go to the next one on the ring
            for i in range(2):
                await add(http, queue, f"during-{i}")
                expected[(queue, f"during-{i}")] += 1
        body = await ready(http)
        assert body["code"] == 200
        assert body["nodes"] == {e.url: "down" if i == victim else "up" for i, e in enumerate(ring)}
        # the live nodes answer for the queues of the dead one
        stats = (await http.get(f"/stats/{owned[0]}")).json()
        assert stats["length"] == 2  # only the fallback's messages are visible now

        restart(ring[victim])

        async def all_up() -> bool:
            return set((await ready(http))["nodes"].values()) == {"up"}

        await wait_for(all_up, 15.0, 0.1, "the node to be seen up again")
        assert (await http.get(f"/stats/{owned[0]}")).json()["length"] == 5
        assert await drain_all(http, QUEUES) == expected


async def test_adding_a_node_during_traffic_loses_nothing(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    urls = [e.url for e in nodes]
    queues = [f"traffic-{i:02}" for i in range(40)]
    old = ServeProcess(["--redis", ",".join(urls[:3])], free_port(), tmp_path / "old.log").wait_ready()
    new: ServeProcess | None = None
    try:
        target = old.url
        accepted: collections.Counter[tuple[str, str]] = collections.Counter()
        taken: collections.Counter[tuple[str, str]] = collections.Counter()
        stop = asyncio.Event()

        async def produce(name: str) -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                n = 0
                while not stop.is_set():
                    queue = random.choice(queues)
                    value = f"{name}-{n}"
                    reply = await http.post(f"{target}/q/{queue}", data={"value": value})
                    assert reply.status_code == 200, reply.text
                    accepted[(queue, value)] += 1
                    n += 1

        async def consume() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                while not stop.is_set():
                    queue = random.choice(queues)
                    reply = await http.get(f"{target}/q/{queue}")
                    assert reply.status_code in (200, 204), reply.text
                    if reply.status_code == 200:
                        taken[(queue, reply.json()["value"])] += 1

        workers = [asyncio.create_task(produce(f"p{i}")) for i in range(3)] + [asyncio.create_task(consume())]

        async def traffic(adds: int, what: str) -> None:
            """Wait for `adds` more accepted adds: a window counted in work, however slow the machine is."""
            goal = accepted.total() + adds

            async def reached() -> bool:
                for worker in workers:
                    if worker.done():
                        worker.result()  # a failed assertion in a worker
                return accepted.total() >= goal

            await wait_for(reached, 60, 0.02, what)

        await traffic(150, "traffic on 3 nodes")
        # A rolling restart: the server with the 4th node appended starts beside the old one, traffic moves
        # over, then the old one stops. Both topologies serve the same queues for a while.
        new = ServeProcess(["--redis", ",".join(urls)], free_port(), tmp_path / "new.log")
        await asyncio.to_thread(new.wait_ready)
        target = new.url
        await traffic(150, "traffic on 4 nodes")
        stop.set()
        await asyncio.gather(*workers)
        old.stop()

        moved = set(registered_queues(nodes[3]))
        assert moved, "the new node took no queue"
        assert len(moved) < len(queues) / 2, f"the new node took {len(moved)} of {len(queues)} queues"
        async with httpx.AsyncClient(base_url=new.url, timeout=30) as http:
            rest = await drain_all(http, queues)
        delivered = taken + rest
        assert sum(accepted.values()) > 200
        duplicates = [m for m, n in delivered.items() if n > 1]
        assert not duplicates, duplicates[:5]
        assert delivered == accepted
    finally:
        old.stop()
        if new is not None:
            new.stop()
