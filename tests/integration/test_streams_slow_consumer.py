"""A consumer that stops reading is disconnected once its bounded buffer fills; the others go on."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from restmq.core.dispatch import StreamConfig
from tests.helpers.queues import stats
from tests.helpers.server import run_app
from tests.helpers.streams import comet, serve_nodes, sse, wait_consumers, ws_url
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration

BUFFER = 200  # messages per connection: two dispatch batches of slack for the fast consumer
VALUE = "x" * 4096
TOTAL = 3000
BATCH = 50


async def open_stalled_comet(
    base: str, queue: str, path: str = "c"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A COMET (or SSE) request on a socket with a tiny receive buffer that the test does not read from."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /{path}/{queue} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_slow_consumer_is_disconnected_and_never_stalls_the_fast_one(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restmq")
    async with (
        run_app(redis_url, stream_config=StreamConfig(buffer=BUFFER)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        comet(base, "slow") as fast,
    ):
        _, stalled = await open_stalled_comet(base, "slow")
        try:
            await wait_consumers(client, base, "slow", 2)
            for start in range(0, TOTAL, BATCH):
                added = await client.post("/q/slow", json=[VALUE] * BATCH)
                assert added.status_code == 200, added.text
                await fast.wait_count(start + BATCH, timeout=30)
            assert fast.keys == [f"slow:{i}" for i in range(1, TOTAL + 1)]
            assert all(m["value"] == VALUE for m in fast.messages)
            assert not fast.ended.is_set()

            async def logged() -> bool:
                return any("too slow" in r.getMessage() for r in caplog.records)

            await wait_for(logged, 10, what='a "too slow" log line')
            await wait_consumers(client, base, "slow", 1)
        finally:
            stalled.close()
        assert (await stats(client, "slow", base=base))["length"] == 0


async def test_stalled_socket_is_closed_by_the_server(redis_url: str) -> None:
    async with (
        run_app(redis_url, stream_config=StreamConfig(buffer=BUFFER)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        reader, stalled = await open_stalled_comet(base, "stall")
        try:
            await wait_consumers(client, base, "stall", 1)
            for _ in range(0, TOTAL, BATCH * 4):
                assert (await client.post("/q/stall", json=[VALUE] * BATCH * 4)).status_code == 200
            await wait_consumers(client, base, "stall", 0)
            received = await read_to_eof(reader)  # the server ended the connection
            assert 0 < len(received) < TOTAL * len(VALUE)
        finally:
            stalled.close()


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    async def read_all() -> bytes:
        data = b""
        while chunk := await reader.read(65536):
            data += chunk
        return data

    return await asyncio.wait_for(read_all(), timeout)


async def test_dropped_sse_consumer_resumes_from_its_last_event_without_a_hole(redis_url: str) -> None:
    config = StreamConfig(buffer=BUFFER, history=TOTAL)
    async with (
        run_app(redis_url, stream_config=config) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        comet(base, "resume") as fast,
    ):
        reader, stalled = await open_stalled_comet(base, "resume", path="sse")
        try:
            await wait_consumers(client, base, "resume", 2)
            for start in range(0, TOTAL, BATCH):
                assert (await client.post("/q/resume", json=[VALUE] * BATCH)).status_code == 200
                await fast.wait_count(start + BATCH, timeout=30)
            await wait_consumers(client, base, "resume", 1)
            got = [key.decode() for key in re.findall(rb"\nid: (\S+)\n", await read_to_eof(reader))]
        finally:
            stalled.close()
        assert 0 < len(got) < TOTAL
        assert got == [f"resume:{i}" for i in range(1, len(got) + 1)]  # a prefix: nothing skipped
        async with sse(base, "resume", last_event_id=got[-1]) as again:
            await again.wait_count(TOTAL - len(got), timeout=30)
        assert all(event.event is None for event in again.events)  # no gap
        assert again.keys == [f"resume:{i}" for i in range(len(got) + 1, TOTAL + 1)]


async def test_sse_sends_heartbeat_comments_while_idle(redis_url: str) -> None:
    async with run_app(redis_url, stream_config=StreamConfig(heartbeat=0.05)) as base, sse(base, "idle") as reader:

        async def beats() -> bool:
            return reader.comments >= 2

        await wait_for(beats, 10, what="two SSE heartbeats")
        assert reader.messages == []
        assert b": heartbeat\n\n" in reader.raw


async def test_websocket_that_stops_reading_is_dropped_and_others_go_on(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="restmq")
    async with (
        run_app(redis_url, stream_config=StreamConfig(buffer=BUFFER)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        comet(base, "wslow") as fast,
    ):
        host, port = base.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        # max_queue=1: the client library stops reading from the socket once one frame waits unread;
        # no compression, or the repetitive values would shrink to nothing
        async with connect(
            ws_url(base, "wslow"), sock=sock, max_queue=1, ping_interval=None, compression=None
        ) as stalled:
            await wait_consumers(client, base, "wslow", 2)
            for start in range(0, TOTAL, BATCH):
                assert (await client.post("/q/wslow", json=[VALUE] * BATCH)).status_code == 200
                await fast.wait_count(start + BATCH, timeout=30)
            await wait_consumers(client, base, "wslow", 1)
            assert any("too slow" in r.getMessage() for r in caplog.records)
            assert stalled.close_code is None or stalled.close_code != 1000  # it never got a clean goodbye
        assert fast.keys == [f"wslow:{i}" for i in range(1, TOTAL + 1)]


@pytest.mark.slow
async def test_serve_process_logs_and_drops_a_stalled_consumer_with_default_buffers(
    redis_url: str, tmp_path: Path
) -> None:
    with serve_nodes(redis_url, tmp_path, 1) as (node,):
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as client, comet(node.url, "big") as fast:
            reader, stalled = await open_stalled_comet(node.url, "big")
            try:
                await wait_consumers(client, node.url, "big", 2)
                for start in range(0, TOTAL, BATCH):
                    assert (await client.post("/q/big", json=[VALUE] * BATCH)).status_code == 200
                    await fast.wait_count(start + BATCH, timeout=30)
                await wait_consumers(client, node.url, "big", 1)
                await read_to_eof(reader)
            finally:
                stalled.close()
            assert fast.keys == [f"big:{i}" for i in range(1, TOTAL + 1)]
        assert "too slow" in node.log()
