"""`restmq serve --workers 2` (SPEC section 1): streaming guarantees hold across the worker processes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from tests.helpers.queues import wait_stats
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import SSEReader, opened, wait_consumers
from tests.helpers.wait import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def workers_process(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `restmq serve --workers 2` for the module (starting it takes seconds)."""
    with serve(["--redis", engine.url, "--workers", "2"], tmp_path_factory.mktemp("workers"), "workers") as process:
        # /ready answers once one worker listens; connections reach both only once both do
        wait_until(lambda: "2 workers listening" in process.log(), 20, 0.05, "both workers to listen")
        yield process


@pytest.fixture
def workers(workers_process: ServeProcess, redis_url: str) -> ServeProcess:
    """The same server on a freshly flushed engine (`redis_url` flushes it)."""
    return workers_process


def processes(client: redis.Redis, queue: str) -> set[str]:
    """The server processes with a streaming consumer of `queue` (consumer ids are `<process>/<n>/<lease>`)."""
    members = client.zrange(keys.queue_keys(queue).consumers, 0, -1)
    return {str(member).split("/")[0] for member in members}


@contextlib.asynccontextmanager
async def consumers_on_both(
    base: str, queue: str, client: redis.Redis, want: int = 4
) -> AsyncIterator[list[SSEReader]]:
    """At least `want` SSE consumers of `queue` spread over both worker processes (the kernel picks a
    worker for each connection by a hash of its addresses, so connect until both have some)."""
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(base_url=base, timeout=30) as http:
        readers: list[SSEReader] = []
        while len(readers) < want or len(processes(client, queue)) < 2:
            assert len(readers) < 16, "every connection landed on the same worker process"
            burst = [opened(SSEReader(f"{base}/sse/{queue}")) for _ in range(4)]
            readers += await asyncio.gather(*(stack.enter_async_context(reader) for reader in burst))
            await wait_consumers(http, base, queue, len(readers))
        yield readers


async def test_broadcast_reaches_every_consumer_on_every_process_in_order(
    workers: ServeProcess, redis_client: redis.Redis
) -> None:
    async with (
        consumers_on_both(workers.url, "news", redis_client) as readers,
        httpx.AsyncClient(base_url=workers.url, timeout=30) as http,
    ):
        assert len(processes(redis_client, "news")) == 2
        sent = []
        for start in range(0, 300, 50):  # batches and single adds, answered by either process
            reply = await http.post("/q/news", json=[f"b{start + i}" for i in range(50)])
            sent += reply.json()["keys"]
            reply = await http.post("/q/news", data={"value": f"s{start}"})
            sent.append(reply.text.strip())
        for reader in readers:
            await reader.wait_count(len(sent), timeout=20)
        for reader in readers:
            assert reader.keys == sent  # each message once, in order, on every consumer
        assert (await http.get("/q/news")).status_code == 204


async def test_roundrobin_over_both_processes_delivers_each_message_once(
    workers: ServeProcess, redis_client: redis.Redis
) -> None:
    async with httpx.AsyncClient(base_url=workers.url, timeout=30) as http:
        assert (await http.post("/p/jobs", data={"policy": "roundrobin"})).status_code == 200
        async with consumers_on_both(workers.url, "jobs", redis_client) as readers:
            sent = []
            for i in range(200):
                reply = await http.post("/q/jobs", data={"value": f"j{i}"})
                assert reply.status_code == 200, reply.text
                sent.append(reply.text.strip())

            async def delivered() -> bool:
                return sum(len(r.keys) for r in readers) >= len(sent)

            await wait_for(delivered, 20, 0.02, "every roundrobin delivery")
            got = collections.Counter(key for reader in readers for key in reader.keys)
            assert got == collections.Counter(sent)  # each message exactly once overall
            assert all(reader.keys for reader in readers), [len(r.keys) for r in readers]

            await wait_stats(http, "jobs", lambda s: s["length"] == 0 and s["leased"] == 0, "every delivery acked", 10)
