"""Every request is bounded in memory and work (issue 13): SSE replay and /peek stop at their byte limits,
batch limits hold while a body is parsed, and long-polls and /stats/stream count against the stream limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from restmq.config import Limits
from restmq.storage.engine import EmbeddedEngine
from tests.helpers.cluster import Cluster
from tests.helpers.queues import drain, length
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration

VALUE = "x" * 1000  # one history event of it is about 1,050 bytes
EVENTS = {"Accept": "text/event-stream"}


@contextlib.asynccontextmanager
async def app_on(request: pytest.FixtureRequest, topology: str, limits: Limits) -> AsyncIterator[str]:
    """RestMQ with `limits` on flushed backends of `topology` (as the `topology` fixture, with limits)."""
    from tests.helpers.topology import flush_cluster, flush_engines

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
