"""Streaming consumers whose clients leave at once never stop the process from serving later ones (found while
testing issue 13: a WebSocket handshake whose client left at once left every later stream of the process waiting).

A consumer leaving ends its queue's dispatcher. The end came while the dispatcher was being woken (by the
consumer's own connect, or by an event), and Python 3.11's asyncio.wait_for swallowed the cancel: the dispatch
loop ran on, the stop waited for it for ever, holding the lock that every connect takes. SPEC section 5: backlog
queued before a consumer connects is delivered when it connects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from restmq.core.dispatch import QueueDispatcher, Streams
from restmq.core.waiters import Waiters
from restmq.storage.node import RedisStore
from tests.helpers.auth import ws_session
from tests.helpers.queues import add
from tests.helpers.rawhttp import raw_connection
from tests.helpers.server import serve
from tests.helpers.streams import ws_url

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def open_and_leave(base: str, path: str) -> int:
    """Open a WebSocket on `path` and leave as soon as the handshake is answered; its status (101)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {base.removeprefix('http://')}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with raw_connection(base) as (reader, writer):
        writer.write(request.encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    return int(status_line.split()[1])


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
async def test_websockets_whose_clients_leave_at_once_never_hold_up_later_consumers(
    redis_url: str, tmp_path: Path, server: str
) -> None:
    """Hundreds of WebSockets that leave at once, 8 at a time on 8 queues; then a consumer of another queue gets
    its backlog. Before the fix one of them, by chance, left every later connect of the process waiting (on
    uvicorn in 3 runs out of 3), and the waiting connects filled the client's stream slots."""
    with serve(["--redis", redis_url, "--server", server], tmp_path, server) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            await add(client, "jobs", "precious")
            for round_ in range(60):
                statuses = await asyncio.gather(*(open_and_leave(served.url, f"/ws/gone{i}") for i in range(8)))
                assert statuses == [101] * 8
                await asyncio.sleep(0.005 * (round_ % 5))  # the leaves land at varied points of the dispatchers
            outcome = await ws_session(ws_url(served.url, "jobs"), expect_frames=1)
            assert [frame["value"] for frame in outcome.frames] == ["precious"], (outcome, served.log()[-3000:])


@pytest.fixture
async def streams(store: RedisStore) -> AsyncIterator[Streams]:
    waiters = Waiters(store)
    running = Streams(store, waiters)
    running.start()
    yield running
    running.closing = True  # ends a dispatch loop that ran on (before the fix), at its next look
    await running.close()
    waiters.close()


async def finishes(coroutine: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
    """The result of `coroutine`, which must finish within `timeout` seconds (told apart from a cancel that the
    code under test might swallow: the wait never cancels it)."""
    task = asyncio.ensure_future(coroutine)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise AssertionError(f"still waiting after {timeout:g}s: {task!r}")
    return task.result()


@pytest.mark.parametrize("ticks", range(6))
async def test_a_dispatcher_stopped_as_it_is_woken_ends(streams: Streams, ticks: int) -> None:
    """The race, made certain: a wake, then the stop `ticks` loop iterations later (some of them land after the
    wake has ended the dispatcher's wait and before the dispatcher ran on). Failed for 0 and 1 ticks."""
    dispatcher = QueueDispatcher(streams, "q")
    dispatcher.start()
    for _ in range(3):  # no consumers: it goes to sleep until woken
        await asyncio.sleep(0)
    dispatcher.wake()
    for _ in range(ticks):
        await asyncio.sleep(0)
    await finishes(dispatcher.stop())


async def test_connects_are_served_while_a_dispatcher_ends(streams: Streams, store: RedisStore) -> None:
    """A queue's last consumer leaves and its dispatcher is ending (no longer while holding the lock that every
    connect takes): a connect to another queue, and to the same one, completes meanwhile, and gets the backlog."""
    for ticks in range(6):
        consumer = await finishes(streams.connect("left"))
        streams.disconnect(consumer)
        for _ in range(ticks):
            await asyncio.sleep(0)
    await store.add("jobs", ["precious"])
    other = await finishes(streams.connect("jobs"))
    again = await finishes(streams.connect("left"))
    batch = await finishes(other.take())
    assert batch is not None and [delivery.value for delivery in batch] == ["precious"]
    streams.disconnect(other)
    streams.disconnect(again)
