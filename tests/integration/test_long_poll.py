"""GET /q/<queue>?count=N and ?wait=S (SPEC section 4)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from tests.helpers.queues import add, add_batch, drain, subscribers
from tests.helpers.server import run_app
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def poll_in_flight(redis_client: redis.Redis, queue: str) -> None:
    """Wait until a long-poll on `queue` has subscribed to the queue's events."""

    async def subscribed() -> bool:
        return subscribers(redis_client, queue) > 0

    await wait_for(subscribed, timeout=5, what=f"a long-poll on {queue} to subscribe")


async def test_count_returns_a_json_array_of_up_to_n(http: httpx.AsyncClient) -> None:
    await add_batch(http, "jobs", ["a", "b", "c", "d", "e"])
    first = await http.get("/q/jobs", params={"count": 3})
    assert first.status_code == 200
    assert first.json() == [
        {"key": "jobs:1", "value": "a", "count": 1},
        {"key": "jobs:2", "value": "b", "count": 1},
        {"key": "jobs:3", "value": "c", "count": 1},
    ]
    assert [m["value"] for m in (await http.get("/q/jobs", params={"count": 10})).json()] == ["d", "e"]
    assert (await http.get("/q/jobs", params={"count": 10})).status_code == 204


async def test_count_one_is_still_an_array(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "a")
    assert (await http.get("/q/jobs", params={"count": 1})).json() == [{"key": "jobs:1", "value": "a", "count": 1}]


@pytest.mark.parametrize("count", ["0", "-1", "1001", "abc", "1.5"])
async def test_bad_count_is_400_and_consumes_nothing(http: httpx.AsyncClient, count: str) -> None:
    await add(http, "jobs", "kept")
    response = await http.get("/q/jobs", params={"count": count})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert [m["value"] for m in await drain(http, "jobs")] == ["kept"]


@pytest.mark.parametrize("wait", ["-1", "61", "abc", "nan", "inf"])
async def test_bad_wait_is_400_and_consumes_nothing(http: httpx.AsyncClient, wait: str) -> None:
    await add(http, "jobs", "kept")
    response = await http.get("/q/jobs", params={"wait": wait})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert [m["value"] for m in await drain(http, "jobs")] == ["kept"]


async def test_long_poll_with_a_waiting_message_returns_at_once(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "ready")
    started = time.monotonic()
    response = await http.get("/q/jobs", params={"wait": 10})
    assert response.json()["value"] == "ready"
    assert time.monotonic() - started < 5


async def test_long_poll_returns_as_soon_as_a_message_arrives(
    server: str, http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as consumer:
        started = time.monotonic()
        poll = asyncio.create_task(consumer.get("/q/jobs", params={"wait": 10}))
        await poll_in_flight(redis_client, "jobs")
        assert not poll.done()
        key = await add(http, "jobs", "wake up")
        response = await poll
    assert response.status_code == 200
    assert response.json() == {"key": key, "value": "wake up", "count": 1}
    assert time.monotonic() - started < 5


async def test_long_poll_with_count_returns_what_arrived(
    server: str, http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as consumer:
        poll = asyncio.create_task(consumer.get("/q/jobs", params={"wait": 10, "count": 50}))
        await poll_in_flight(redis_client, "jobs")
        await add_batch(http, "jobs", ["a", "b", "c"])
        response = await poll
    assert [m["value"] for m in response.json()] == ["a", "b", "c"]


async def test_long_poll_times_out_with_204(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await http.get("/q/jobs", params={"wait": 1})
    elapsed = time.monotonic() - started
    assert response.status_code == 204
    assert 0.9 <= elapsed < 8


async def test_one_message_wakes_exactly_one_of_two_long_polls(
    server: str, http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    async with httpx.AsyncClient(base_url=server) as a, httpx.AsyncClient(base_url=server) as b:
        polls = [asyncio.create_task(c.get("/q/jobs", params={"wait": 2})) for c in (a, b)]
        await poll_in_flight(redis_client, "jobs")
        await add(http, "jobs", "only one")
        responses = await asyncio.gather(*polls)
    assert sorted(r.status_code for r in responses) == [200, 204]


async def test_starting_a_stopped_queue_wakes_its_long_polls(
    server: str, http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    await add(http, "jobs", "backlog")
    await http.post("/control/jobs", data={"status": "stop"})
    async with httpx.AsyncClient(base_url=server, timeout=30) as consumer:
        started = time.monotonic()
        poll = asyncio.create_task(consumer.get("/q/jobs", params={"wait": 10}))
        await poll_in_flight(redis_client, "jobs")
        await http.post("/control/jobs", data={"status": "start"})
        response = await poll
    assert response.json()["value"] == "backlog"
    assert time.monotonic() - started < 5


async def test_long_poll_of_a_stopped_queue_times_out_with_the_stop_header(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "held")
    await http.post("/control/jobs", data={"status": "stop"})
    response = await http.get("/q/jobs", params={"wait": 0.5})
    assert response.status_code == 204
    assert response.headers["X-RestMQ-Status"] == "stop"


async def test_an_add_racing_a_fresh_long_poll_is_not_missed(redis_url: str, redis_client: redis.Redis) -> None:
    # Each run is a new server, so the long-poll's subscription is set up while the add happens.
    for run in range(8):
        redis_client.flushall()
        async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url, timeout=30) as consumer:
            async with httpx.AsyncClient(base_url=url) as producer:
                started = time.monotonic()
                poll = asyncio.create_task(consumer.get("/q/race", params={"wait": 10}))
                await asyncio.sleep(run * 0.002)  # stagger the add across the poll's set-up (no condition to wait on)
                await add(producer, "race", f"run {run}")
                response = await poll
        assert response.json()["value"] == f"run {run}"
        assert time.monotonic() - started < 5, f"run {run}: the long-poll missed the add"
