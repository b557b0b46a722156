"""SIGTERM under load: streams end at once (SSE `retry:`, WebSocket 1012), in-flight requests
finish, the process exits 0, and after a restart on the same data dir nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from pathlib import Path

import httpx
import pytest

from restmq.core.dispatch import SHUTDOWN, Streams
from restmq.core.waiters import Waiters
from restmq.storage.node import RedisStore
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.streams import SSEReader, WSReader, ws_url
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUEUES = {"jobs": "broadcast", "work": "roundrobin"}


class Producer:
    """Adds to every queue from a few concurrent tasks until the server goes away; records each
    key that was answered 200 (acknowledged, so it must not be lost)."""

    def __init__(self, base: str, workers: int = 4) -> None:
        self.base = base
        self.acked: dict[str, set[str]] = {queue: set() for queue in QUEUES}
        self.errors: list[BaseException] = []
        self.refused = 0
        self._numbers = itertools.count()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(workers)]

    @property
    def count(self) -> int:
        return sum(len(keys) for keys in self.acked.values())

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=15) as client:
            while True:
                n = next(self._numbers)
                queue = "jobs" if n % 2 else "work"
                try:
                    response = await client.post(f"/q/{queue}", data={"value": f"v{n}"})
                except httpx.TransportError:  # the server is gone (or going): not acknowledged
                    self.refused += 1
                    if self.refused > 50:
                        return
                    await asyncio.sleep(0.01)  # back-off before trying again, not a wait for a condition
                    continue
                if response.status_code == 200:
                    self.acked[queue].add(response.text.strip())
                else:
                    assert response.status_code == 503, response.text  # shutting down: refused, not lost
                    self.refused += 1

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start_reader(reader: SSEReader | WSReader) -> SSEReader | WSReader:
    await reader._start(10)
    return reader


@pytest.mark.parametrize(("http_server", "max_seconds"), [("uvicorn", 12), ("granian", 20)], ids=["uvicorn", "granian"])
async def test_sigterm_under_load_loses_nothing(tmp_path: Path, http_server: str, max_seconds: float) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--server", http_server]
    server = ServeProcess(args, free_port(), tmp_path / "first.log")
    readers: list[SSEReader | WSReader] = []
    producer: Producer | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            for queue, policy in QUEUES.items():
                assert (await client.post(f"/p/{queue}", data={"policy": policy})).status_code == 200
        for queue in QUEUES:
            readers.append(await start_reader(SSEReader(f"{server.url}/sse/{queue}")))
            readers.append(await start_reader(WSReader(ws_url(server.url, queue))))
        producer = Producer(server.url)

        async def busy() -> bool:
            assert producer is not None
            return producer.count >= 400 and all(len(r.messages) >= 20 for r in readers)

        await wait_for(busy, timeout=30, interval=0.05, what="load on every queue and stream")
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.to_thread(server.proc.wait, max_seconds + 10)
        took = time.monotonic() - signalled
        assert code == 0, server.log()
        assert took <= max_seconds, f"shutdown took {took:.1f}s\n{server.log()}"
        for reader in readers:
            await reader.wait_ended(timeout=10)
        await producer.stop()
    finally:
        if producer is not None:
            await producer.stop()
        for reader in readers:
            await reader.close()
        server.stop()

    for reader in readers:
        if isinstance(reader, SSEReader):
            assert reader.events and reader.events[-1].retry == 250, (reader.events[-3:], reader.raw[-200:])
            assert reader.events[0].retry is not None  # the stream's opening retry: line
        else:
            assert reader.close_code == 1012, (reader.close_code, reader.close_reason)

    with serve(args, tmp_path, "second") as second:
        remaining: dict[str, list[str]] = {}
        with httpx.Client(base_url=second.url, timeout=30) as http:
            for queue in QUEUES:
                remaining[queue] = []
                while (response := http.get(f"/q/{queue}", params={"count": 500})).status_code == 200:
                    remaining[queue] += [m["key"] for m in response.json()]
                assert response.status_code == 204, response.text

    assert producer is not None
    lost = check_deliveries(readers, producer, remaining)
    assert producer.acked["work"] and not lost["work"], f"roundrobin lost {sorted(lost['work'])[:5]}"
    assert not lost["jobs"], f"broadcast lost {len(lost['jobs'])} acknowledged keys at shutdown"


def check_deliveries(
    readers: list[SSEReader | WSReader], producer: Producer, remaining: dict[str, list[str]]
) -> dict[str, set[str]]:
    """Per queue, the acknowledged keys that were neither streamed nor left in the queue."""
    lost: dict[str, set[str]] = {}
    for queue, policy in QUEUES.items():
        streamed = [r for r in readers if f"/{queue}" in getattr(r, "url", "")]
        assert len(streamed) == 2
        delivered: set[str] = set().union(*(r.keys for r in streamed))
        for reader in streamed:
            assert len(reader.keys) == len(set(reader.keys)), f"{queue}: a stream got a message twice"
        if policy == "roundrobin":  # each message to exactly one consumer
            assert not set(streamed[0].keys) & set(streamed[1].keys)
        assert len(remaining[queue]) == len(set(remaining[queue]))
        lost[queue] = producer.acked[queue] - delivered - set(remaining[queue])
    return lost


async def test_a_stream_registered_during_the_drain_ends_at_once(store: RedisStore) -> None:
    """A consumer whose registration finishes after the shutdown drain began is closed with the
    shutdown reason (its client reconnects elsewhere) instead of holding the shutdown up."""
    streams = Streams(store, Waiters(store))
    streams.start()
    try:
        streams.close_consumers()
        assert streams._closing_task is not None
        await streams._closing_task  # the drain is over: nothing else would close a consumer now
        consumer = await streams.connect("late")
        assert consumer.closed == SHUTDOWN
        assert await consumer.take() is None
    finally:
        await streams.close()
