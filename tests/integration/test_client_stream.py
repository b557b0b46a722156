"""Client streams survive a server restart: they reconnect by themselves and, with Last-Event-ID,
get the messages broadcast while they were away, in order and without duplicates.

Server A (`restmq serve` in a subprocess) holds the client's stream; server B (in-process, same
backend) keeps another streaming consumer connected, so messages added during A's outage are
really broadcast (taken from the queue and kept in the history) rather than left waiting.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from restmq.client import AsyncClient, Client, Message
from restmq.client.aio import AsyncStream
from restmq.client.sync import Stream
from tests.helpers.server import ServeProcess, free_port
from tests.helpers.streams import sse, wait_consumers
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUEUE = "news"


class Restartable:
    """`restmq serve` on a fixed port that can be killed and started again on the same port."""

    def __init__(self, redis_url: str, tmp_path: Path, *args: str) -> None:
        self.args = ["--redis", redis_url, *args]
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


# -- reconnect backoff: full jitter, and the server's retry: ----------------------------------------

CLIENTS = 16


class Fleet:
    """CLIENTS streams of one queue (async ones in this loop, or sync ones in threads) and the moment
    each one connected again."""

    def __init__(self, url: str, kind: str, queue: str, **options: float) -> None:
        self.kind, self.queue = kind, queue
        self.async_client = AsyncClient(url, timeout=5, connect_timeout=1)
        self.sync_client = Client(url, timeout=5, connect_timeout=1)
        make = self.async_client.stream if kind == "async" else self.sync_client.stream
        self.streams: list[AsyncStream | Stream] = [make(queue, **options) for _ in range(CLIENTS)]  # type: ignore[arg-type]
        self.readers: list[asyncio.Future[None]] = []
        self.threads = ThreadPoolExecutor(CLIENTS)  # one thread per sync stream (the default pool is smaller)

    async def __aenter__(self) -> Fleet:
        loop = asyncio.get_running_loop()
        for stream in self.streams:
            if isinstance(stream, AsyncStream):
                self.readers.append(asyncio.ensure_future(self._read_async(stream)))
            else:
                self.readers.append(loop.run_in_executor(self.threads, self._read_sync, stream))
        return self

    @staticmethod
    async def _read_async(stream: AsyncStream) -> None:
        async for _ in stream:
            pass

    @staticmethod
    def _read_sync(stream: Stream) -> None:
        for _ in stream:
            pass

    async def connected(self, connects: int, timeout: float) -> list[float]:
        """Wait until every stream has connected `connects` times; when each got there (monotonic)."""
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(self.streams):
            for i, stream in enumerate(self.streams):
                if i not in seen and stream.connects >= connects:
                    seen[i] = time.monotonic()
            for reader in self.readers:
                if reader.done():
                    reader.result()
                    raise AssertionError("a stream ended")
            assert time.monotonic() < deadline, f"{len(seen)} of {len(self.streams)} streams connected {connects}x"
            await asyncio.sleep(0.005)
        return [seen[i] for i in range(len(self.streams))]

    async def __aexit__(self, *exc: object) -> None:
        for stream in self.streams:
            if isinstance(stream, AsyncStream):
                await stream.aclose()
            else:
                stream.close()
        await asyncio.wait_for(asyncio.gather(*self.readers, return_exceptions=True), 10)
        await self.async_client.aclose()
        self.sync_client.close()
        self.threads.shutdown()


async def close_streams(url: str, queue: str) -> float:
    """DELETE /q/<queue>: the server closes the queue's streams (and stays up); when it answered."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.delete(f"{url}/q/{queue}")
    assert response.status_code == 200, response.text
    return time.monotonic()


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_servers_retry_is_the_base_of_the_reconnect_backoff(
    redis_url: str, tmp_path: Path, kind: str
) -> None:
    """Issue 14: streams closed together reconnect at random times up to the server's retry: (6 s
    here), however short the client's own reconnect_delay; never all at once."""
    server = Restartable(redis_url, tmp_path, "--sse-retry", "6")
    server.start()
    try:
        async with Fleet(server.url, kind, "slow", reconnect_delay=0.05, max_reconnect_delay=0.1) as fleet:
            await fleet.connected(1, 30)
            closed = await close_streams(server.url, "slow")
            waits = [at - closed for at in await fleet.connected(2, 60)]
    finally:
        server.stop()
    assert max(waits) > 1.5, waits  # the client's own 0.05-0.1 s would have them all back at once
    assert max(waits) < 3 * 6, waits
    assert max(waits) - min(waits) > 1.0, waits  # spread out


async def test_a_short_server_retry_shortens_the_clients_wait(redis_url: str, tmp_path: Path) -> None:
    """The server's retry: replaces the client's reconnect_delay both ways: 0.2 s beats 5 s."""
    server = Restartable(redis_url, tmp_path, "--sse-retry", "0.2")
    server.start()
    try:
        async with Fleet(server.url, "async", "quick", reconnect_delay=5, max_reconnect_delay=5) as fleet:
            await fleet.connected(1, 30)
            closed = await close_streams(server.url, "quick")
            waits = [at - closed for at in await fleet.connected(2, 60)]
    finally:
        server.stop()
    assert max(waits) < 2.5, waits  # well under the client's own 5 s


async def test_streams_come_back_spread_out_after_a_server_restart(redis_url: str, tmp_path: Path) -> None:
    """Issue 14: after a crash and restart of the server, reconnects are spread (full jitter)
    instead of all landing on the same backoff step."""
    server = Restartable(redis_url, tmp_path)  # the default retry: 3 s
    server.start()
    try:
        async with Fleet(server.url, "async", "herd") as fleet:
            await fleet.connected(1, 30)
            server.crash()
            await asyncio.to_thread(server.start)
            up = time.monotonic()
            back = await fleet.connected(2, 60)
    finally:
        server.stop()
    assert max(back) - min(back) > 1.0, [round(at - min(back), 3) for at in back]
    assert max(back) - up < 3 * 5, max(back) - up  # no wait once the server is up beyond the 5 s cap (x3)
