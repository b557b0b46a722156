"""Client streams survive a server restart: they reconnect by themselves and, with Last-Event-ID,
get the messages broadcast while they were away, in order and without duplicates.

Server A (`restmq serve` in a subprocess) holds the client's stream; server B (in-process, same
backend) keeps another streaming consumer connected, so messages added during A's outage are
really broadcast (taken from the queue and kept in the history) rather than left waiting.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from restmq.client import AsyncClient, Client, Message
from tests.helpers.server import ServeProcess, free_port
from tests.helpers.streams import sse, wait_consumers
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUEUE = "news"


class Restartable:
    """`restmq serve` on a fixed port that can be killed and started again on the same port."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.args = ["--redis", redis_url]
        self.port = free_port()
        self.tmp_path = tmp_path
        self.runs = 0
        self.process: ServeProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.runs += 1
        self.process = ServeProcess(self.args, self.port, self.tmp_path / f"serve-{self.runs}.log").wait_ready()

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill(signal.SIGKILL)
        self.process.stop()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def server_a(redis_url: str, tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(redis_url, tmp_path)
    restartable.start()
    try:
        yield restartable
    finally:
        restartable.stop()


async def add_range(http: httpx.AsyncClient, base: str, first: int, last: int) -> None:
    for i in range(first, last + 1):
        response = await http.post(f"{base}/q/{QUEUE}", data={"value": f"m{i}"})
        assert response.status_code == 200, response.text


async def outage(server_a: Restartable, server: str, received: list[Message]) -> None:
    """Messages 1-5 live, 6-15 while A is down (B's consumer takes them), 16-20 after A is back."""
    async with httpx.AsyncClient(timeout=10) as http:
        await wait_consumers(http, server, QUEUE, 1)
        await add_range(http, server, 1, 5)
        await wait_for(lambda: asyncio.sleep(0, len(received) >= 5), 10, what="the first 5 messages")
        async with sse(server, QUEUE) as other:  # B's consumer keeps broadcasting while A is away
            await wait_consumers(http, server, QUEUE, 2)
            server_a.crash()
            await add_range(http, server, 6, 15)
            await other.wait_count(10)
            assert received[-1].key == f"{QUEUE}:5", "A is down: nothing can arrive"
            await asyncio.to_thread(server_a.start)
            await wait_for(lambda: asyncio.sleep(0, len(received) >= 15), 20, what="the replay after reconnect")
            await add_range(http, server, 16, 20)
            await wait_for(lambda: asyncio.sleep(0, len(received) >= 20), 10, what="live messages after reconnect")


def expected() -> list[str]:
    return [f"{QUEUE}:{i}" for i in range(1, 21)]


async def test_async_stream_resumes_after_restart(server: str, server_a: Restartable) -> None:
    received: list[Message] = []
    async with AsyncClient(server_a.url, timeout=5, connect_timeout=1) as client:
        stream = client.stream(QUEUE, reconnect_delay=0.05, max_reconnect_delay=0.3)

        async def read() -> None:
            async with stream:
                async for message in stream:
                    received.append(message)

        reader = asyncio.create_task(read())
        try:
            await outage(server_a, server, received)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    assert [m.key for m in received] == expected()
    assert [m.value for m in received] == [f"m{i}" for i in range(1, 21)]
    assert stream.connects >= 2 and stream.gaps == []


async def test_sync_stream_resumes_after_restart(server: str, server_a: Restartable) -> None:
    received: list[Message] = []
    client = Client(server_a.url, timeout=5, connect_timeout=1)
    stream = client.stream(QUEUE, reconnect_delay=0.05, max_reconnect_delay=0.3)

    def read() -> None:
        with stream:
            for message in stream:
                received.append(message)
                if len(received) == 20:
                    return

    reader = asyncio.create_task(asyncio.to_thread(read))
    try:
        await outage(server_a, server, received)
        await asyncio.wait_for(reader, 10)
    finally:
        stream.close()
        client.close()
    assert [m.key for m in received] == expected()
    assert stream.connects >= 2 and stream.gaps == []


async def test_resume_from_a_given_last_event_id(server: str) -> None:
    """A new stream started with last_event_id replays the broadcast history after it."""
    async with httpx.AsyncClient(timeout=10) as http, sse(server, QUEUE) as other:
        await wait_consumers(http, server, QUEUE, 1)
        await add_range(http, server, 1, 6)
        await other.wait_count(6)
    async with AsyncClient(server, timeout=5) as client:
        received: list[str] = []
        async with client.stream(QUEUE, last_event_id=f"{QUEUE}:3") as stream:
            async for message in stream:
                received.append(message.key)
                if len(received) == 3:
                    break
    assert received == [f"{QUEUE}:4", f"{QUEUE}:5", f"{QUEUE}:6"]
