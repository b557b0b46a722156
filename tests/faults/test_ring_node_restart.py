"""A ring node killed and restarted on its AOF, again and again (issue 14, item 3).

While the server reports a node up, a GET never answers 204 for a queue whose ready messages sit on that
node: a node that came back is not marked down again by its own stale pooled connections (only a fresh
connection failing marks a node down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from tests.helpers.engine_faults import kill_engine, restart_engine
from tests.helpers.lossy_link import lossy_link
from tests.helpers.server import serve
from tests.helpers.topology import engine_client, engines
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

QUEUES = [f"restart-{i:02}" for i in range(12)]
ROUNDS = 10
PER_QUEUE = 8  # messages added to each queue per round
CHECKS = 4  # rounds of concurrent GETs per restart once the node is reported up


@contextlib.contextmanager
def backend_urls(ring: list[EmbeddedEngine], link: str) -> Iterator[list[str]]:
    """The nodes' URLs as the server reaches them: directly, or through links that leave connections half open."""
    if link == "direct":
        yield [engine.url for engine in ring]
        return
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(lossy_link(engine.socket_path, half_open=True)).url for engine in ring]


def ready_on(engine: EmbeddedEngine) -> dict[str, int]:
    """How many ready messages each queue has on that node (read from the node itself)."""
    client = engine_client(engine)
    try:
        return {queue: int(client.zcard(keys.queue_keys(queue).ready)) for queue in QUEUES}
    except redis.RedisError:
        return dict.fromkeys(QUEUES, 0)
    finally:
        client.close()


async def node_states(http: httpx.AsyncClient) -> list[str]:
    """The states /ready reports, in --redis order."""
    nodes: dict[str, str] = (await http.get("/ready")).json()["nodes"]
    return list(nodes.values())


async def get_all(http: httpx.AsyncClient) -> dict[str, int]:
    """One GET per queue, all at once (the server then uses several pooled connections per node)."""
    replies = await asyncio.gather(*(http.get(f"/q/{queue}") for queue in QUEUES))
    return {queue: reply.status_code for queue, reply in zip(QUEUES, replies, strict=True)}


async def add_to_all(http: httpx.AsyncClient, values: list[str]) -> None:
    for queue in QUEUES:
        reply = await http.post(f"/q/{queue}", json=values)
        assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("link", ["direct", "half-open"])
async def test_no_204_for_messages_on_a_node_reported_up(tmp_path: Path, link: str) -> None:
    with engines(tmp_path / "ring", 3) as ring, backend_urls(ring, link) as urls:
        with serve(["--redis", ",".join(urls)], tmp_path, "ring") as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                invisible: list[str] = []
                for round_ in range(ROUNDS):
                    victim = round_ % len(ring)
                    await add_to_all(http, [f"r{round_}-{i}" for i in range(PER_QUEUE)])
                    await get_all(http)  # every node's pool in use
                    kill_engine(ring[victim])
                    await get_all(http)  # the server finds the node down
                    await add_to_all(http, [f"r{round_}-while-down"])  # the victim's queues: on a fallback node
                    restart_engine(ring[victim])

                    async def victim_up(at: int = victim) -> bool:
                        return (await node_states(http))[at] == "up"

                    await wait_for(victim_up, 30, 0.05, f"node {victim} to be reported up again")
                    for _ in range(CHECKS):
                        up = [state == "up" for state in await node_states(http)]
                        held = [ready_on(engine) for engine in ring]
                        statuses = await get_all(http)
                        assert set(statuses.values()) <= {200, 204}, statuses
                        invisible += [
                            f"round {round_}: {queue} answered 204 with {held[i][queue]} ready on node {i}, up"
                            for queue, status in statuses.items()
                            if status == 204
                            for i in range(len(ring))
                            if up[i] and held[i][queue] > 0
                        ]
                assert invisible == []
