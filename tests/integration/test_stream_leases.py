"""Streaming consumers in lease mode (`?lease=S` on /sse, /c and /ws of a roundrobin queue)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers.queues import stats, wait_stats
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def roundrobin(http: httpx.AsyncClient, queue: str) -> None:
    reply = await http.post(f"/p/{queue}", data={"policy": "roundrobin"})
    assert reply.json() == {"queue": queue, "value": "roundrobin"}


class StreamReader:
    """Messages of one SSE or COMET connection, collected by a background task."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def read_sse(self, response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                self.messages.append(orjson.loads(line[6:]))

    async def read_comet(self, response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.strip():
                self.messages.append(orjson.loads(line))

    async def wait_count(self, n: int, timeout: float = 10.0) -> None:
        async def enough() -> bool:
            return len(self.messages) >= n

        await wait_for(enough, timeout, 0.01, f"{n} streamed messages")


@contextlib.asynccontextmanager
async def stream(http: httpx.AsyncClient, path: str, sse: bool = True) -> AsyncIterator[StreamReader]:
    reader = StreamReader()
    headers = {"Accept": "text/event-stream"} if sse else {}
    async with http.stream("GET", path, headers=headers, timeout=httpx.Timeout(30, read=None)) as response:
        assert response.status_code == 200
        task = asyncio.create_task(reader.read_sse(response) if sse else reader.read_comet(response))
        try:
            yield reader
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


async def ack(http: httpx.AsyncClient, queue: str, message: dict[str, Any]) -> None:
    reply = await http.delete(f"/q/{queue}/{message['key']}", params={"count": message["count"]})
    assert reply.status_code == 200, reply.text


async def test_sse_lease_mode_redelivers_what_a_gone_consumer_did_not_ack(http: httpx.AsyncClient) -> None:
    await roundrobin(http, "jobs")
    async with stream(http, "/sse/jobs?lease=5") as b:
        async with stream(http, "/sse/jobs?lease=5") as a:
            await wait_stats(http, "jobs", lambda s: s["consumers"] == 2, "two consumers", 10.0)
            added = await http.post("/q/jobs", json=[f"job{i}" for i in range(10)])
            assert added.status_code == 200

            async def all_streamed() -> bool:
                return len(a.messages) + len(b.messages) == 10

            await wait_for(all_streamed, 10, 0.01, "all ten to be streamed")
            assert all(m["count"] == 1 for m in a.messages + b.messages)
            assert {m["value"] for m in a.messages + b.messages} == {f"job{i}" for i in range(10)}
            assert len(a.messages) >= 2 and len(b.messages) >= 2  # rotated over both
            current = await stats(http, "jobs")
            assert (current["leased"], current["length"]) == (10, 0)  # nothing is acked by writing it

            acked_by_a = a.messages[: len(a.messages) // 2]
            unacked = a.messages[len(a.messages) // 2 :]
            for message in acked_by_a:
                await ack(http, "jobs", message)
        # A is gone with some messages unacked: they go back to the queue and on to B.
        first_b = len(b.messages)
        await b.wait_count(first_b + len(unacked))
        redelivered = b.messages[first_b:]
        assert sorted(m["key"] for m in redelivered) == sorted(m["key"] for m in unacked)
        assert {m["count"] for m in redelivered} == {2}
        for message in b.messages:
            await ack(http, "jobs", message)
        final = await stats(http, "jobs")
        assert (final["acked"], final["leased"], final["length"]) == (10, 0, 0)


async def test_a_streamed_lease_that_runs_out_is_delivered_again(http: httpx.AsyncClient) -> None:
    await roundrobin(http, "short")
    async with stream(http, "/sse/short?lease=0.4") as only:
        await wait_stats(http, "short", lambda s: s["consumers"] == 1, "the consumer", 10.0)
        await http.post("/q/short", data={"value": "x"})
        await only.wait_count(2, timeout=5)  # not acked: the lease runs out and it comes again
        assert [(m["key"], m["count"]) for m in only.messages[:2]] == [("short:1", 1), ("short:1", 2)]
        stale = await http.delete("/q/short/short:1", params={"count": 1})
        assert stale.status_code == 409 and stale.json()["code"] == "LEASE_STALE"
        await ack(http, "short", only.messages[-1])
    assert (await stats(http, "short"))["acked"] == 1


async def test_comet_lease_mode_releases_on_disconnect(http: httpx.AsyncClient) -> None:
    await roundrobin(http, "cq")
    async with stream(http, "/c/cq?lease=30", sse=False) as reader:
        await wait_stats(http, "cq", lambda s: s["consumers"] == 1, "the consumer", 10.0)
        await http.post("/q/cq", data={"value": "x"})
        await reader.wait_count(1)
        assert reader.messages == [{"key": "cq:1", "value": "x", "count": 1}]
    # Released at once on disconnect, far sooner than the 30 s lease.
    await wait_stats(http, "cq", lambda s: s["leased"] == 0 and s["length"] == 1, "the release", 5.0)
    assert (await http.get("/q/cq")).json() == {"key": "cq:1", "value": "x", "count": 2}


async def test_streams_without_lease_carry_no_count_and_need_no_ack(http: httpx.AsyncClient) -> None:
    await roundrobin(http, "plain")
    async with stream(http, "/sse/plain") as reader:
        await wait_stats(http, "plain", lambda s: s["consumers"] == 1, "the consumer", 10.0)
        await http.post("/q/plain", data={"value": "x"})
        await reader.wait_count(1)
        assert reader.messages == [{"key": "plain:1", "value": "x"}]
        await wait_stats(http, "plain", lambda s: s["leased"] == 0 and s["length"] == 0, "the in-flight ack", 10.0)


async def ws_frames(ws: ClientConnection, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(frames) < n:
            frames.append(orjson.loads(await ws.recv()))
    return frames


async def test_websocket_lease_mode_ack_and_release_frames(server: str, http: httpx.AsyncClient) -> None:
    await roundrobin(http, "wq")
    async with connect(server.replace("http://", "ws://") + "/ws/wq?lease=30") as ws:
        await wait_stats(http, "wq", lambda s: s["consumers"] == 1, "the consumer", 10.0)
        await http.post("/q/wq", json=["a", "b"])
        first, second = await ws_frames(ws, 2)
        assert (first, second) == (
            {"key": "wq:1", "value": "a", "count": 1},
            {"key": "wq:2", "value": "b", "count": 1},
        )
        await ws.send(orjson.dumps({"cmd": "ack", "key": "wq:1"}).decode())
        assert await ws_frames(ws, 1) == [{"queue": "wq", "key": "wq:1", "count": 1, "status": "ack"}]
        current = await stats(http, "wq")
        assert (current["acked"], current["leased"]) == (1, 1)

        # Release: it comes straight back to this (only) consumer, delivered a second time.
        await ws.send(orjson.dumps({"cmd": "release", "key": "wq:2", "count": 1}).decode())
        frames = await ws_frames(ws, 2)
        assert {"queue": "wq", "key": "wq:2", "count": 1, "status": "release"} in frames
        assert {"key": "wq:2", "value": "b", "count": 2} in frames

        await ws.send(orjson.dumps({"cmd": "ack", "key": "wq:2", "count": 1}).decode())
        (stale,) = await ws_frames(ws, 1)
        assert stale["code"] == "LEASE_STALE"
        await ws.send(orjson.dumps({"cmd": "ack", "key": "wq:9"}).decode())
        (missing,) = await ws_frames(ws, 1)
        assert missing["code"] == "MESSAGE_NOT_FOUND"
        await ws.send("not json")
        (bad,) = await ws_frames(ws, 1)
        assert bad["code"] == "JSON_INVALID"
        await ws.send(orjson.dumps({"cmd": "ack", "key": "wq:2", "count": 2}).decode())
        assert await ws_frames(ws, 1) == [{"queue": "wq", "key": "wq:2", "count": 2, "status": "ack"}]
    final = await stats(http, "wq")
    assert (final["acked"], final["leased"], final["length"]) == (2, 0, 0)


async def test_websocket_lease_mode_returns_unacked_messages_on_close(server: str, http: httpx.AsyncClient) -> None:
    await roundrobin(http, "wc")
    async with connect(server.replace("http://", "ws://") + "/ws/wc?lease=30") as ws:
        await wait_stats(http, "wc", lambda s: s["consumers"] == 1, "the consumer", 10.0)
        await http.post("/q/wc", json=["a", "b"])
        await ws_frames(ws, 2)
        await ws.send(orjson.dumps({"cmd": "ack", "key": "wc:1"}).decode())
        await ws_frames(ws, 1)
    await wait_stats(http, "wc", lambda s: s["leased"] == 0 and s["length"] == 1, "the release on close", 5.0)
    assert (await http.get("/q/wc")).json() == {"key": "wc:2", "value": "b", "count": 2}
