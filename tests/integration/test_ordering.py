"""Delivery order: FIFO per queue, priorities, and delayed messages (SPEC sections 2 and 4)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers.queues import add, add_batch, drain, length
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def test_fifo_over_500_single_adds(http: httpx.AsyncClient) -> None:
    values = [f"message-{i}" for i in range(500)]
    keys = [await add(http, "fifo", value) for value in values]
    assert keys == [f"fifo:{i}" for i in range(1, 501)]
    delivered = await drain(http, "fifo")
    assert [m["value"] for m in delivered] == values
    assert [m["key"] for m in delivered] == keys


async def test_fifo_across_batches_and_count_reads(http: httpx.AsyncClient) -> None:
    values = [str(i) for i in range(500)]
    for start in range(0, 500, 100):
        await add_batch(http, "fifo", values[start : start + 100])
    got: list[str] = []
    while (response := await http.get("/q/fifo", params={"count": 37})).status_code == 200:
        got += [m["value"] for m in response.json()]
    assert got == values


async def test_queues_are_independent(http: httpx.AsyncClient) -> None:
    await add(http, "a", "a1")
    await add(http, "b", "b1")
    await add(http, "a", "a2")
    assert [m["value"] for m in await drain(http, "b")] == ["b1"]
    assert [m["value"] for m in await drain(http, "a")] == ["a1", "a2"]


async def test_higher_priority_first_fifo_within_a_priority(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "low-1", priority="0")
    await add(http, "jobs", "high-1", priority="9")
    await add(http, "jobs", "mid-1", priority="5")
    await add(http, "jobs", "low-2")
    await add(http, "jobs", "high-2", priority="9")
    await add(http, "jobs", "mid-2", priority="5")
    order = [m["value"] for m in await drain(http, "jobs")]
    assert order == ["high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"]


async def test_priority_of_a_batch(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "plain")
    await http.post("/q/jobs?priority=9", json=["urgent-1", "urgent-2"])
    assert [m["value"] for m in await drain(http, "jobs")] == ["urgent-1", "urgent-2", "plain"]


@pytest.mark.parametrize("priority", ["10", "-1", "1.5", "high"])
async def test_bad_priority_is_400(http: httpx.AsyncClient, priority: str) -> None:
    response = await http.post("/q/jobs", data={"value": "x", "priority": priority})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
    assert await length(http, "jobs") == 0


async def test_delayed_message_is_invisible_until_due(http: httpx.AsyncClient) -> None:
    added = time.monotonic()
    key = await add(http, "jobs", "later", delay="1")
    assert (await http.get("/q/jobs")).status_code == 204
    stats = (await http.get("/stats/jobs")).json()
    assert (stats["length"], stats["delayed"]) == (0, 1)

    async def delivered() -> dict[str, object] | None:
        response = await http.get("/q/jobs")
        return response.json() if response.status_code == 200 else None

    message = await wait_for(delivered, timeout=5, what="the delayed message to become visible")
    assert message == {"key": key, "value": "later", "count": 1}
    assert time.monotonic() - added >= 0.9


async def test_delayed_message_goes_behind_ready_ones(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "delayed", delay="0.3")
    await add(http, "jobs", "now")

    async def both_ready() -> bool:
        return (await length(http, "jobs")) == 2

    await wait_for(both_ready, timeout=5)
    assert [m["value"] for m in await drain(http, "jobs")] == ["now", "delayed"]


async def test_a_long_poll_wakes_when_a_delayed_message_comes_due(http: httpx.AsyncClient) -> None:
    await add(http, "jobs", "due soon", delay="0.5")
    started = time.monotonic()
    response = await http.get("/q/jobs", params={"wait": 10})
    assert response.json()["value"] == "due soon"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("delay", ["-1", "abc", "1300000"])
async def test_bad_delay_is_400(http: httpx.AsyncClient, delay: str) -> None:
    response = await http.post("/q/jobs", data={"value": "x", "delay": delay})
    assert response.status_code == 400
    assert response.json()["code"] == "PARAMETER_INVALID"
