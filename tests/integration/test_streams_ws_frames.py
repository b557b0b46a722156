"""WebSocket messages that are due together: written at once (restmq/cli/uvicorn_ws.py), still one text frame a
message, in order, with and without permessage-deflate (issue 16)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.helpers.queues import add_batch, wait_stats
from tests.helpers.streams import wait_consumers, ws_url

pytestmark = pytest.mark.integration

VALUES = ["a", "é ✓ " * 40, "x" * 70_000, *(f"m{i}" for i in range(60))]  # frame lengths of 7, 16 and 64 bits


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_ws_batch_arrives_as_one_text_frame_per_message_in_order(
    server: str, http: httpx.AsyncClient, compression: str | None
) -> None:
    async with connect(ws_url(server, "wsframes"), compression=compression, open_timeout=10) as client:
        assert bool(client.protocol.extensions) == (compression is not None)
        await wait_consumers(http, server, "wsframes", 1)
        keys = await add_batch(http, "wsframes", VALUES)
        frames = [await asyncio.wait_for(client.recv(), 10) for _ in VALUES]
    assert all(isinstance(frame, str) for frame in frames)
    assert [orjson.loads(frame) for frame in frames] == [
        {"key": key, "value": value} for key, value in zip(keys, VALUES, strict=True)
    ]


async def test_ws_roundrobin_batch_is_acked_once_written(server: str, http: httpx.AsyncClient) -> None:
    await http.post("/p/wsrr", data={"policy": "roundrobin"})
    async with connect(ws_url(server, "wsrr"), compression=None, open_timeout=10) as client:
        await wait_consumers(http, server, "wsrr", 1)
        keys = await add_batch(http, "wsrr", [f"v{i}" for i in range(50)])
        frames = [orjson.loads(await asyncio.wait_for(client.recv(), 10)) for _ in keys]
        assert [frame["key"] for frame in frames] == keys
        await wait_stats(http, "wsrr", lambda s: s["leased"] == 0 and s["length"] == 0, "the acks of what was written")
