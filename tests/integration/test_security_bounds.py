"""Every request is bounded in memory and work (issue 13): SSE replay and /peek stop at their byte limits,
batch limits hold while a body is parsed, and long-polls and /stats/stream count against the stream limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from restmq.config import Limits
from restmq.storage.engine import EmbeddedEngine
from tests.helpers.cluster import Cluster
from tests.helpers.queues import add, drain, length
from tests.helpers.server import run_app, serve
from tests.helpers.streams import sse
from tests.helpers.topology import flush_cluster, flush_engines
from tests.helpers.wait import wait_for, wait_parked

pytestmark = pytest.mark.integration

VALUE = "x" * 1000  # one history event of it is about 1,050 bytes
EVENTS = {"Accept": "text/event-stream"}


@contextlib.asynccontextmanager
async def app_on(request: pytest.FixtureRequest, topology: str, limits: Limits) -> AsyncIterator[str]:
    """RestMQ with `limits` on flushed backends of `topology` (as the `topology` fixture, with limits)."""
    if topology == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        app = run_app(engine.url, limits=limits)
    elif topology == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        app = run_app(redis_urls=[e.url for e in ring], limits=limits)
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        app = run_app(redis_cluster=cluster.url, limits=limits)
    async with app as url:
        yield url


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    text: str = body["error"]
    return text


# -- SSE replay ----------------------------------------------------------------------------------


async def broadcast_history(base: str, queue: str, n: int) -> list[str]:
    """`n` messages of 1,000 bytes streamed to an SSE consumer, so that they are in the replay history."""
    async with sse(base, queue) as reader, httpx.AsyncClient(base_url=base) as http:
        sent = [await add(http, queue, f"{i:03d}{VALUE}") for i in range(n)]
        await reader.wait_count(n)
        assert reader.keys == sent
    return sent


@pytest.mark.parametrize("topology", ["node", "ring", "cluster"])
async def test_a_replay_sends_the_newest_history_that_fits_max_replay_bytes_after_a_gap(
    request: pytest.FixtureRequest, topology: str
) -> None:
    """Issue 13: a Last-Event-ID replay of a large history is capped at --max-replay-bytes; the client is
    told that older messages were left out (`event: gap`), then the newest history that fits follows."""
    async with app_on(request, topology, Limits(max_replay_bytes=3500)) as base:
        sent = await broadcast_history(base, "news", 12)
        async with sse(base, "news", last_event_id=sent[0]) as reader, httpx.AsyncClient(base_url=base) as http:
            live = await add(http, "news", "live")
            await reader.wait_count(4)
            assert reader.keys == [*sent[-3:], live]  # three 1,050-byte events fit in 3,500 bytes, four do not
            named = [e for e in reader.events if e.event is not None]
            assert [e.event for e in named] == ["gap"]
            assert orjson.loads(named[0].data or "") == {"last_event_id": sent[0], "oldest": sent[-3]}
            replayed = reader.raw[: reader.raw.index(b"id: %s\n" % live.encode())]
            history = replayed[replayed.index(b"id: ") :]
            assert len(history) <= 3500


async def test_a_replay_within_max_replay_bytes_is_complete_and_has_no_gap(redis_url: str) -> None:
    """Issue 13: the byte limit only cuts a replay that would pass it."""
    async with run_app(redis_url, limits=Limits(max_replay_bytes=3500)) as base:
        sent = await broadcast_history(base, "news", 12)
        async with sse(base, "news", last_event_id=sent[-4]) as reader, httpx.AsyncClient(base_url=base) as http:
            live = await add(http, "news", "live")
            await reader.wait_count(4)
            assert reader.keys == [*sent[-3:], live]
            assert [e.event for e in reader.events if e.event is not None] == []


@pytest.mark.slow  # a `restmq serve` subprocess
@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_max_replay_bytes_is_the_serve_option(redis_url: str, tmp_path: Path, http_server: str) -> None:
    """Issue 13: `restmq serve --max-replay-bytes` sets the replay limit, on either HTTP server."""
    args = ["--redis", redis_url, "--server", http_server, "--max-replay-bytes", "2200"]
    with serve(args, tmp_path) as server:
        sent = await broadcast_history(server.url, "news", 5)
        async with sse(server.url, "news", last_event_id=sent[0]) as reader:
            async with httpx.AsyncClient(base_url=server.url) as http:
                live = await add(http, "news", "live")
            await reader.wait_count(3)
            assert reader.keys == [*sent[-2:], live]
            assert [e.event for e in reader.events if e.event is not None] == ["gap"]


@pytest.mark.slow  # a `restmq serve` subprocess
@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_a_replay_of_many_chunks_arrives_whole_and_in_order(
    redis_url: str, tmp_path: Path, http_server: str
) -> None:
    """A replay is written in chunks of about 64 KiB: 60 events of 20 KB arrive complete, in order."""
    with serve(["--redis", redis_url, "--server", http_server], tmp_path) as server:
        async with sse(server.url, "news") as reader, httpx.AsyncClient(base_url=server.url) as http:
            sent = [await add(http, "news", f"{i:03d}" + "y" * 20_000) for i in range(61)]
            await reader.wait_count(61)
        async with sse(server.url, "news", last_event_id=sent[0]) as reader:
            await reader.wait_count(60)
            assert reader.keys == sent[1:]
            assert [m["value"][:3] for m in reader.messages] == [f"{i:03d}" for i in range(1, 61)]
            assert all(len(m["value"]) == 20_003 for m in reader.messages)
            assert [e.event for e in reader.events if e.event is not None] == []


# -- /peek ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["node", "ring", "cluster"])
async def test_peek_returns_the_newest_messages_that_fit_max_peek_bytes_and_says_it_was_truncated(
    request: pytest.FixtureRequest, topology: str
) -> None:
    """Issue 13: /peek?limit=500 over big messages holds at most --max-peek-bytes of values, newest first,
    with "truncated": true; an answer that fits says "truncated": false."""
    async with app_on(request, topology, Limits(max_peek_bytes=3500)) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            sent = [await add(http, "big", f"{i:03d}{VALUE}") for i in range(10)]
            body = (await http.get("/peek/big", params={"limit": "500"})).json()
            assert [m["key"] for m in body["messages"]] == sent[::-1][:3]  # 3 values of 1,003 bytes fit in 3,500
            assert body["truncated"] is True
            assert body["stats"]["length"] == 10
            body = (await http.get("/peek/big", params={"limit": "2"})).json()
            assert [m["key"] for m in body["messages"]] == sent[::-1][:2]
            assert body["truncated"] is False
            assert len(await drain(http, "big")) == 10  # nothing was delivered by peeking


@pytest.mark.slow  # a `restmq serve` subprocess
async def test_the_queue_page_holds_at_most_max_peek_bytes_of_messages(redis_url: str, tmp_path: Path) -> None:
    """Issue 13: the /j/<queue> page shows the same bounded view as /peek (`restmq serve --max-peek-bytes`)."""
    with serve(["--redis", redis_url, "--max-peek-bytes", "3500"], tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            sent = [await add(http, "big", f"{i:03d}{VALUE}") for i in range(10)]
            page = await http.get("/j/big", params={"limit": "500"}, headers={"Accept": "text/html"})
            assert page.status_code == 200
            assert [key for key in sent if f'data-key="{key}"' in page.text] == sent[-3:]
            assert "--max-peek-bytes" in page.text
            body = (await http.get("/peek/big", params={"limit": "500"})).json()
            assert (len(body["messages"]), body["truncated"]) == (3, True)


# -- batches -------------------------------------------------------------------------------------


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = Limits(max_batch=10, max_value=100)
    async with run_app(redis_url, limits=limits) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def test_an_ndjson_batch_over_max_batch_is_refused_before_its_lines_are_parsed(
    small: httpx.AsyncClient,
) -> None:
    """Issue 13: the 11th line of an NDJSON batch with --max-batch 10 refuses it (413 naming the limit)
    before any line is decoded: a broken line after the limit is never looked at, and nothing is stored."""
    body = b"\n".join([b'"ok"'] * 11 + [b"{broken"])
    response = await small.post("/q/jobs", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert "limit of 10" in assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await length(small, "jobs") == 0
    assert (await small.get("/stats/jobs")).json()["added"] == 0


async def test_a_json_array_over_max_batch_is_refused_before_the_rest_is_parsed(small: httpx.AsyncClient) -> None:
    """Issue 13: the same for a JSON array: its 11th element refuses it, whatever follows."""
    body = b"[" + b",".join([b'{"n":[1,2,3]}'] * 11) + b", {broken"
    response = await small.post("/q/jobs", content=body, headers={"Content-Type": "application/json"})
    assert "limit of 10" in assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await length(small, "jobs") == 0


@pytest.mark.parametrize(
    "body",
    [
        b"\n\n" + b"\n \r\n".join([b'"ok"'] * 10) + b"\n\n\n",  # blank lines are not messages
        b"\r".join([b'{"a":1}'] * 10),
    ],
)
async def test_an_ndjson_batch_at_max_batch_is_added(small: httpx.AsyncClient, body: bytes) -> None:
    response = await small.post("/q/jobs", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert len(response.json()["keys"]) == 10


@pytest.mark.parametrize(
    "values",
    [
        [{"a": [1, 2, {"b": "c,d]"}], "e": None}] * 10,  # many commas, all inside elements
        ["a,b,c", "[1,2]", '"quoted", too', "\\", "{,}"] * 2,
        [[], {}, 1.5e3, -2, True, None, "", [[[[]]]], {"k": {}}, "end"],
    ],
)
async def test_a_json_array_at_max_batch_is_added_as_before(small: httpx.AsyncClient, values: list[Any]) -> None:
    response = await small.post("/q/jobs", content=orjson.dumps(values), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    stored = [m["value"] for m in await drain(small, "jobs")]
    assert stored == [v if isinstance(v, str) else orjson.dumps(v).decode() for v in values]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'["ok", "' + b"v" * 101 + b'"]', "application/json"),
        (b'"ok"\n"' + b"v" * 101 + b'"\n', "application/x-ndjson"),
    ],
)
async def test_a_batch_with_a_value_over_max_value_stores_nothing(
    small: httpx.AsyncClient, body: bytes, content_type: str
) -> None:
    response = await small.post("/q/jobs", content=body, headers={"Content-Type": content_type})
    assert "limit of 100 bytes" in assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await length(small, "jobs") == 0


# -- long-polls and /stats/stream take stream slots ------------------------------------------------


async def refused_stream(base: str, path: str, headers: dict[str, str] | None = None) -> str:
    """The error of a stream (or long-poll) that must be refused; an accepted one is never read to its end."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream("GET", path, headers=headers) as response:
            assert response.status_code == 503, f"{path} was not refused: {response.status_code}"
            await response.aread()
    assert response.headers.get("retry-after") == "1", response.headers
    return assert_error(response, 503, "TOO_MANY_STREAMS")


LIMITS = [
    (Limits(max_streams_per_client=2), "127.0.0.1 already has 2 streaming connections open"),
    (Limits(max_streams=2), "the server has 2 streaming connections open"),
]


@pytest.mark.parametrize(("limits", "message"), LIMITS)
async def test_long_polls_count_against_the_stream_limits(redis_url: str, limits: Limits, message: str) -> None:
    """Issue 13: with a limit of 2 streams, two waiting long-polls use it up: a third long-poll, and a
    stream, get 503 TOO_MANY_STREAMS with Retry-After; once a long-poll has its answer, its slot is free."""
    async with run_app(redis_url, limits=limits) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        polls = [asyncio.create_task(http.get(f"/q/lp{i}", params={"wait": "10"})) for i in range(2)]
        try:
            await wait_parked(http, 2)  # both long-polls wait, each holding a stream slot
            assert message in await refused_stream(base, "/q/lp2?wait=5")
            assert message in await refused_stream(base, "/sse/lp2", EVENTS)
            assert not any(poll.done() for poll in polls)
            await add(http, "lp0", "wake")
            answered = await asyncio.wait_for(polls[0], 10)
            assert answered.json()["value"] == "wake"

            async def polls_again() -> bool:
                response = await http.get("/q/lp3", params={"wait": "0.05"})
                assert response.status_code in (204, 503), response.text
                return response.status_code == 204

            await wait_for(polls_again, timeout=10, interval=0.05, what="the answered long-poll's slot")
            await add(http, "lp1", "wake")
            assert (await asyncio.wait_for(polls[1], 10)).json()["value"] == "wake"
        finally:  # a long-poll the client gave up on still runs to its end on the server
            await asyncio.gather(*polls, return_exceptions=True)


async def test_a_plain_get_takes_no_stream_slot(redis_url: str) -> None:
    """A GET without ?wait= answers at once: it is not a stream and works when every slot is taken."""
    async with run_app(redis_url, limits=Limits(max_streams_per_client=1)) as base:
        async with sse(base, "jobs"), httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/q/other")).status_code == 204
            assert (await http.get("/q/other", params={"wait": "0"})).status_code == 204
            assert (await http.get("/q/other", params={"count": "5"})).status_code == 204


@contextlib.asynccontextmanager
async def stats_stream(base: str) -> AsyncIterator[httpx.Response]:
    """An open /stats/stream whose first bytes have arrived."""
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=None)) as client:
        async with client.stream("GET", "/stats/stream", headers=EVENTS) as response:
            assert response.status_code == 200
            chunks = response.aiter_raw()  # kept: a dropped iterator closes the response
            first = await anext(chunks)
            assert first.startswith(b"retry:")
            yield response


@pytest.mark.parametrize(("limits", "message"), LIMITS)
async def test_stats_streams_count_against_the_stream_limits(redis_url: str, limits: Limits, message: str) -> None:
    """Issue 13: the dashboard's /stats/stream is a stream like any other: over the limit it is 503
    TOO_MANY_STREAMS with Retry-After, and it fills the limit for other streams too."""
    async with run_app(redis_url, limits=limits) as base:
        async with stats_stream(base):
            async with sse(base, "jobs") as reader:
                assert reader.response is not None and reader.response.status_code == 200
                assert message in await refused_stream(base, "/stats/stream", EVENTS)
            async with stats_stream(base):
                assert message in await refused_stream(base, "/stats/stream", EVENTS)
                assert message in await refused_stream(base, "/sse/jobs", EVENTS)
                assert message in await refused_stream(base, "/q/jobs?wait=5")

        async def opens() -> bool:  # closed by the client: their slots come back
            try:
                async with stats_stream(base), stats_stream(base):
                    return True
            except AssertionError:
                return False

        await wait_for(opens, timeout=10, interval=0.05, what="the stats streams' slots to be freed")
