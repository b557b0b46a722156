"""Issue 14, item 6: the queue registry (`rmq:names`) and the timer index (`rmq:timers`) cannot be left wrong.

Both are cross-slot indexes written after the queue's own script. A purge racing an add must never leave a
queue that holds messages out of the registry, and whatever a crash between a script and its index write
leaves missing, the reaper's background repair restores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.server import ServeProcess, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 1000


@pytest.fixture
def server(engine: EmbeddedEngine, redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """A real `restmq serve --workers 2` on the session engine, flushed (`redis_url`): two processes race."""
    with serve(["--redis", engine.url, "--workers", "2"], tmp_path) as process:
        wait_until(lambda: "2 workers listening" in process.log(), 20, 0.05, "both workers to listen")
        yield process


async def listed(http: httpx.AsyncClient, queue: str) -> bool:
    reply = await http.get("/q/", params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    return queue in reply.json()["queues"]


async def held(http: httpx.AsyncClient, queue: str) -> int:
    reply = await http.get(f"/stats/{queue}")
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    return int(stats["length"]) + int(stats["delayed"]) + int(stats["leased"])


async def test_a_purge_racing_adds_never_unlists_a_queue_that_holds_messages(server: ServeProcess) -> None:
    queue = "racy"
    unlisted_rounds = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for round_ in range(ROUNDS):
            replies = await asyncio.gather(
                http.post(f"/q/{queue}", data={"value": f"a{round_}"}),
                http.delete(f"/q/{queue}"),
                http.post(f"/q/{queue}", data={"value": f"b{round_}"}),
            )
            assert [r.status_code for r in replies] == [200, 200, 200], [r.text for r in replies]
            if await held(http, queue) and not await listed(http, queue):
                unlisted_rounds.append(round_)
                await http.delete(f"/q/{queue}")  # start the next round from a listed-or-empty queue
    assert unlisted_rounds == [], f"{len(unlisted_rounds)} of {ROUNDS} rounds left the queue holding messages unlisted"
