"""ttl=S on add: a message not consumed in time is dropped (SPEC section 4)."""

from __future__ import annotations

import httpx
import pytest
import redis

from restmq.core.model import PopMode
from restmq.storage.node import RedisStore
from tests.helpers.queues import add, drain, stats, wait_stats
from tests.helpers.wait import wait_for, wait_until

pytestmark = pytest.mark.integration


async def test_an_unconsumed_message_expires(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "short-lived", ttl="1")
    assert (await stats(http, "jobs"))["length"] == 1

    await wait_stats(http, "jobs", lambda s: s["expired"] == 1, "the ttl=1 message to expire")
    assert (await stats(http, "jobs"))["length"] == 0
    assert (await http.get("/q/jobs")).status_code == 204


async def test_expiry_keeps_the_messages_without_ttl(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "forever")
    await add(http, "jobs", "mortal", ttl="0.2")
    await add(http, "jobs", "also forever")

    await wait_stats(http, "jobs", lambda s: s["expired"] == 1, "the ttl message to expire")
    assert [m["value"] for m in await drain(http, "jobs")] == ["forever", "also forever"]


async def test_a_message_consumed_in_time_is_delivered(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "quick", ttl="30")
    assert (await http.get("/q/jobs")).json()["value"] == "quick"
    assert (await stats(http, "jobs"))["expired"] == 0


async def test_a_pop_drops_an_expired_message_before_the_reaper_does(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    # No server here, so no reaper: the pop itself must notice the deadline.
    await store.add("jobs", ["stale"], ttl_ms=100)
    await store.add("jobs", ["fresh"])
    seconds, micros = redis_client.time()
    deadline = seconds * 1000 + micros // 1000 + 100
    wait_until(lambda: _server_ms(redis_client) > deadline, timeout=5, what="the ttl deadline on the server clock")
    popped = await store.pop("jobs", PopMode.TAKE, count=10)
    assert [m.value for m in popped.messages] == ["fresh"]
    (stats,) = await store.stats(["jobs"])
    assert stats.counters["expired"] == 1


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_ttl_counts_from_the_end_of_the_delay(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "delayed then mortal", delay="0.5", ttl="30")

    async def delivered() -> httpx.Response | None:
        response = await http.get("/q/jobs")
        return response if response.status_code == 200 else None

    response = await wait_for(delivered, timeout=5, what="the delayed message")
    assert isinstance(response, httpx.Response)
    assert response.json()["value"] == "delayed then mortal"


@pytest.mark.parametrize("ttl", ["-1", "abc", "inf", "nan"])
async def test_bad_ttl_is_400(http: httpx.AsyncClient, ttl: str) -> None:
    response = await http.post("/q/jobs", data={"value": "x", "ttl": ttl})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert (await http.get("/q/jobs")).status_code == 204


async def test_ttl_as_a_query_parameter(http: httpx.AsyncClient) -> None:
    await http.post("/q/jobs?ttl=0.2", data={"value": "x"})

    await wait_stats(http, "jobs", lambda s: s["expired"] == 1, "the ttl message to expire")
