"""Limits with clear errors: body and message size, batch size, names, WebSocket frames, streams per
client and in total, slow bodies, idle connections, hostile JSONP callbacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from restmq.config import Limits
from tests.helpers.auth import ws_session
from tests.helpers.queues import add, drain, length, wait_stats
from tests.helpers.rawhttp import closed_by_server, raw_connection, read_response
from tests.helpers.server import run_app, serve
from tests.helpers.streams import sse, ws_url
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    return body


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = Limits(max_body=1024, max_value=256, max_batch=5)
    # with --jsonp: the hostile callbacks below meet the name rule (without it, any callback= is refused)
    async with (
        run_app(redis_url, limits=limits, jsonp=True) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as client,
    ):
        yield client


# -- sizes ---------------------------------------------------------------------------------------


async def test_an_oversized_body_is_413(small: httpx.AsyncClient) -> None:
    await add(small, "jobs", "kept")
    assert_error(await small.post("/q/jobs", content=b"x" * 2048), 413, "PAYLOAD_TOO_LARGE")
    assert_error(await small.post("/q/jobs", data={"value": "x" * 2048}), 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while it arrives
        for _ in range(8):
            yield b"y" * 256

    response = await small.post("/q/jobs", content=chunks(), headers={"Content-Type": "text/plain"})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    command = b'{"cmd":"add","queue":"jobs","value":"' + b"z" * 2048 + b'"}'
    assert_error(await small.post("/queue", content=command), 413, "PAYLOAD_TOO_LARGE")
    assert_error(await small.post("/", data={"queue": "jobs", "value": "v" * 2048}), 413, "PAYLOAD_TOO_LARGE")
    assert [m["value"] for m in await drain(small, "jobs")] == ["kept"]


async def test_an_oversized_value_and_batch_are_413(small: httpx.AsyncClient) -> None:
    assert_error(await small.post("/q/jobs", data={"value": "v" * 257}), 413, "PAYLOAD_TOO_LARGE")
    assert (await small.post("/q/jobs", data={"value": "v" * 256})).status_code == 200
    assert_error(await small.post("/q/jobs", json=["a"] * 6), 413, "PAYLOAD_TOO_LARGE")
    assert_error(await small.post("/q/jobs", json=["a", "b" * 300]), 413, "PAYLOAD_TOO_LARGE")
    assert (await small.post("/q/jobs", json=["a"] * 5)).status_code == 200
    assert await length(small, "jobs") == 6  # nothing of a refused batch was stored


async def test_queue_names_and_wait_are_bounded(small: httpx.AsyncClient) -> None:
    assert_error(await small.post("/q/" + "n" * 201, data={"value": "x"}), 400, "QUEUE_NAME_INVALID")
    assert (await small.post("/q/" + "n" * 200, data={"value": "x"})).status_code == 200
    assert_error(await small.get("/q/jobs", params={"wait": "61"}), 400, "PARAMETER_INVALID")


@pytest.mark.parametrize("callback", ["alert(1)//", "<script>", "a b", "x" * 65, "1x", "cb;evil()", "a-b", "cb\n"])
async def test_hostile_jsonp_callbacks_are_400_and_consume_nothing(small: httpx.AsyncClient, callback: str) -> None:
    await add(small, "jobs", "safe")
    for method, path in [("GET", "/q/jobs"), ("GET", "/stats/jobs"), ("GET", "/q/"), ("POST", "/queue")]:
        json = {"cmd": "take", "queue": "jobs"} if method == "POST" else None
        response = await small.request(method, path, params={"callback": callback}, json=json)
        assert_error(response, 400, "CALLBACK_INVALID")
        assert callback not in response.text or callback in ("a-b", "1x")
    assert [m["value"] for m in await drain(small, "jobs")] == ["safe"]


# -- slow senders and idle connections -------------------------------------------------------------


async def test_a_slow_body_gets_408(redis_url: str) -> None:
    async with run_app(redis_url, limits=Limits(body_timeout=1)) as base:
        async with raw_connection(base) as (reader, writer):
            writer.write(
                b"POST /q/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 100\r\n\r\nvalue=only-a-part"
            )
            await writer.drain()
            started = time.monotonic()
            status, headers, body = await read_response(reader, timeout=5)
            waited = time.monotonic() - started
        assert status == 408, body
        assert headers["content-type"].startswith("application/json") and b'"REQUEST_TIMEOUT"' in body
        assert 0.8 <= waited < 8, waited  # body_timeout=1, with room for a loaded machine
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/stats/slow")).json()["length"] == 0  # nothing half-added


@pytest.mark.slow
async def test_an_idle_keep_alive_connection_is_closed(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--idle-timeout", "1"], tmp_path) as server:
        async with raw_connection(server.url) as (reader, writer):
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            assert (await read_response(reader, timeout=5))[0] == 200
            assert await closed_by_server(reader, timeout=5)


@pytest.mark.slow
async def test_a_connection_that_never_completes_its_headers_is_closed(redis_url: str, tmp_path: Path) -> None:
    """Slowloris: request headers must be complete within --idle-timeout; the server stays up."""
    with serve(["--redis", redis_url, "--idle-timeout", "1"], tmp_path) as server:
        async with raw_connection(server.url) as (reader, writer):
            writer.write(b"GET /health HTTP/1.1\r\nHost: te")  # and nothing more
            await writer.drain()
            assert await closed_by_server(reader, timeout=4)
        async with raw_connection(server.url) as (reader, _):  # opened, and silent
            assert await closed_by_server(reader, timeout=4)
        async with raw_connection(server.url) as (reader, writer):  # a request in time is served
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            assert (await read_response(reader, timeout=5))[0] == 200


# -- WebSocket frames --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_an_oversized_websocket_frame_closes_with_1009(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--max-frame", "1024"], tmp_path) as server:
        url = ws_url(server.url, "jobs")
        big = '{"cmd":"add","value":"' + "x" * 2048 + '"}'
        outcome = await ws_session(url, send=[big])
        assert outcome.close_code == 1009, outcome
        assert not outcome.frames
        small = await ws_session(url, send=['{"cmd":"add","value":"fits"}'], expect_frames=1)
        assert small.frames[0]["key"] == "jobs:1"  # the server is still up, and the big frame added nothing
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/stats/jobs")).json()["added"] == 1


# -- streams per client and in total -----------------------------------------------------------------


async def assert_refused(base: str, expected: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        async with client.stream("GET", "/sse/jobs") as response:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            await response.aread()
        assert expected in assert_error(response, 503, "TOO_MANY_STREAMS")["error"]
        async with client.stream("GET", "/c/jobs") as response:
            assert response.status_code == 503
    refused = await ws_session(ws_url(base, "jobs"))
    assert refused.close_code == 1013 and not refused.frames, refused


async def eventually_opens(base: str, kind: str = "sse") -> None:
    async def opens() -> bool:
        if kind == "ws":
            outcome = await ws_session(ws_url(base, "jobs"), send=['{"cmd":"take"}'], expect_frames=1)
            assert outcome.frames or outcome.close_code == 1013, outcome
            return bool(outcome.frames)
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            async with client.stream("GET", "/sse/jobs", headers={"Accept": "text/event-stream"}) as response:
                return response.status_code == 200

    await wait_for(opens, timeout=5, interval=0.05, what="a stream slot to be freed")


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (Limits(max_streams_per_client=2), "127.0.0.1 already has 2 streaming connections open"),
        (Limits(max_streams=2), "the server has 2 streaming connections open"),
    ],
)
async def test_too_many_streams(redis_url: str, limits: Limits, message: str) -> None:
    async with run_app(redis_url, limits=limits) as base:
        async with sse(base, "jobs") as first:
            async with sse(base, "jobs") as second:
                assert first.response is not None and first.response.status_code == 200
                assert second.response is not None and second.response.status_code == 200
                await assert_refused(base, message)
                async with httpx.AsyncClient(base_url=base) as client:
                    key = await add(client, "jobs", "still flowing")
                await first.wait_count(1)
                await second.wait_count(1)
                assert first.keys == second.keys == [key]
            await eventually_opens(base)  # one closed: a new one works, on every transport
            await eventually_opens(base, "ws")
        await eventually_opens(base)
        # a refused stream never took a slot: after many refusals the limit is still exactly 2
        async with sse(base, "jobs"), sse(base, "jobs"):
            for _ in range(5):
                await assert_refused(base, message)
        async with sse(base, "jobs"), sse(base, "jobs"):
            await assert_refused(base, message)


async def test_stream_slots_are_freed_when_clients_vanish(redis_url: str) -> None:
    """Clients that drop (cancelled readers, closed sockets) give their slots back."""
    async with run_app(redis_url, limits=Limits(max_streams_per_client=3)) as base:
        for _ in range(4):  # 4 rounds of 3 streams, each closed by the client: no leak
            async with sse(base, "jobs"), sse(base, "jobs", path="c"):
                await eventually_opens(base, "ws")
            await eventually_opens(base)
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_stats(client, "jobs", lambda s: s["consumers"] == 0, "every consumer to be gone", 10)
        readers = [sse(base, "jobs") for _ in range(3)]
        opened = [await reader.__aenter__() for reader in readers]
        try:
            await assert_refused(base, "already has 3")
        finally:
            for reader in readers:
                await reader.__aexit__(None, None, None)
        assert len(opened) == 3
        await asyncio.wait_for(eventually_opens(base), 10)
