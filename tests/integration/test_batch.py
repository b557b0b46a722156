"""Batch add (SPEC section 4): a JSON array or NDJSON body adds all of its messages or none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from restmq.config import Limits
from tests.helpers.queues import add, drain, length
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A server with a batch limit of 10 messages."""
    async with run_app(redis_url, limits=Limits(max_batch=10)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_json_array_adds_every_element_in_order(http: httpx.AsyncClient) -> None:
    response = await http.post("/q/jobs", json=["a", "b", "c"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"keys": ["jobs:1", "jobs:2", "jobs:3"]}
    assert [m["value"] for m in await drain(http, "jobs")] == ["a", "b", "c"]


async def test_non_string_elements_are_stored_as_json_text(http: httpx.AsyncClient) -> None:
    await http.post("/q/jobs", json=[{"id": 1}, [1, 2], 3, True, None])
    assert [m["value"] for m in await drain(http, "jobs")] == ['{"id":1}', "[1,2]", "3", "true", "null"]


async def test_ndjson_adds_one_message_per_line(http: httpx.AsyncClient) -> None:
    body = b'"first"\n{"n": 2}\n\n"third"\n'
    response = await http.post("/q/jobs", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert response.json() == {"keys": ["jobs:1", "jobs:2", "jobs:3"]}
    assert [m["value"] for m in await drain(http, "jobs")] == ["first", '{"n":2}', "third"]


async def test_batch_keys_continue_the_queue_sequence(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "single")
    assert (await http.post("/q/jobs", json=["x", "y"])).json() == {"keys": ["jobs:2", "jobs:3"]}


async def test_a_json_object_body_is_one_message(http: httpx.AsyncClient) -> None:
    response = await http.post("/q/jobs", content=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert response.text == "jobs:1\r\n"
    assert (await http.get("/q/jobs")).json()["value"] == '{"a": 1}'


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'["ok", "also ok", ', "application/json"),
        (b'["ok", tru]', "application/json"),
        (b"[]", "application/json"),
        (b'"ok"\n"fine"\n{broken\n', "application/x-ndjson"),
        (b'"ok"\n["unterminated"\n', "application/x-ndjson"),
        (b"", "application/x-ndjson"),
        (b'["ok", "\xff"]', "application/json"),
    ],
)
async def test_a_bad_batch_is_400_and_stores_nothing(http: httpx.AsyncClient, body: bytes, content_type: str) -> None:
    await add(http, "jobs", "kept")
    response = await http.post("/q/jobs", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["code"] in ("JSON_INVALID", "VALUE_INVALID")
    assert [m["value"] for m in await drain(http, "jobs")] == ["kept"]


async def test_one_oversized_element_rejects_the_whole_batch(redis_url: str) -> None:
    limits = Limits(max_value=100)
    async with run_app(redis_url, limits=limits) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/q/jobs", json=["small", "x" * 101, "small"])
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
        assert await length(http, "jobs") == 0
        assert (await http.get("/stats/jobs")).json()["added"] == 0


async def test_batch_at_the_limit_is_accepted(small: httpx.AsyncClient) -> None:
    response = await small.post("/q/jobs", json=[str(i) for i in range(10)])
    assert response.status_code == 200
    assert len(response.json()["keys"]) == 10


@pytest.mark.parametrize("ndjson", [False, True])
async def test_batch_over_the_limit_is_413_and_stores_nothing(small: httpx.AsyncClient, ndjson: bool) -> None:
    values = [str(i) for i in range(11)]
    if ndjson:
        body = "\n".join(f'"{v}"' for v in values).encode()
        response = await small.post("/q/jobs", content=body, headers={"Content-Type": "application/x-ndjson"})
    else:
        response = await small.post("/q/jobs", json=values)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "limit of 10" in response.json()["error"]
    assert await length(small, "jobs") == 0


async def test_large_batch_is_added_atomically(http: httpx.AsyncClient) -> None:
    values = [f"m{i}" for i in range(5_000)]
    keys = (await http.post("/q/bulk", json=values)).json()["keys"]
    assert keys == [f"bulk:{i}" for i in range(1, 5_001)]
    assert await length(http, "bulk") == 5_000
