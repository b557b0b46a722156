"""delay=, ttl= and priority= on add (SPEC section 4), alone and together with leases."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from restmq.core import service
from tests.helpers.queues import add, drain_values, stats, wait_stats

pytestmark = pytest.mark.integration


async def test_a_delayed_message_comes_due_within_a_second(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SAFETY_RECHECK", 60.0)  # only the reaper's promotion can wake the poll
    added_at = time.monotonic()
    await add(http, "later", "x", delay=1)
    current = await stats(http, "later")
    assert (current["delayed"], current["length"]) == (1, 0)
    assert (await http.get("/q/later")).status_code == 204

    # A long-poll that starts now is woken when the reaper promotes the message: no consumer polls.
    reply = await http.get("/q/later", params={"wait": 20})
    elapsed = time.monotonic() - added_at
    assert reply.status_code == 200
    assert reply.json() == {"key": "later:1", "value": "x", "count": 1}
    assert 1.0 <= elapsed < 5.0, elapsed  # due at 1 s, the reaper runs every 0.25 s; room for a loaded machine


async def test_the_reaper_promotes_delayed_messages_without_consumers(http: httpx.AsyncClient) -> None:
    added_at = time.monotonic()
    await add(http, "idle", "x", delay=0.5)
    await wait_stats(http, "idle", lambda s: s["delayed"] == 0 and s["length"] == 1, "the reaper", 10.0)
    assert 0.45 <= time.monotonic() - added_at < 4.0


async def test_delayed_messages_are_delivered_in_due_order(http: httpx.AsyncClient) -> None:
    await add(http, "due", "third", delay=0.9)
    await add(http, "due", "first", delay=0.3)
    await add(http, "due", "now")
    await add(http, "due", "second", delay=0.6)
    await wait_stats(http, "due", lambda s: s["delayed"] == 0 and s["length"] == 4, "all of them to come due")
    assert await drain_values(http, "due") == ["now", "first", "second", "third"]


async def test_a_delay_in_a_batch_applies_to_every_message(http: httpx.AsyncClient) -> None:
    reply = await http.post("/q/bd?delay=0.4", json=["a", "b", "c"])
    assert reply.status_code == 200
    assert (await stats(http, "bd"))["delayed"] == 3
    got = await http.get("/q/bd", params={"wait": 3, "count": 3})
    assert [m["value"] for m in got.json()] == ["a", "b", "c"]


async def test_bad_delay_ttl_and_priority_are_refused(http: httpx.AsyncClient) -> None:
    for params in ({"delay": "-1"}, {"delay": "abc"}, {"ttl": "-1"}, {"priority": "10"}, {"priority": "-1"}):
        reply = await http.post("/q/badopts", data={"value": "x", **params})
        assert reply.status_code == 400, (params, reply.text)
    assert (await http.get("/stats/badopts")).json()["added"] == 0


async def test_ttl_drops_a_message_not_consumed_in_time(http: httpx.AsyncClient) -> None:
    await add(http, "ttl", "short", ttl=0.3)
    await add(http, "ttl", "long", ttl=30)
    await wait_stats(http, "ttl", lambda s: s["expired"] == 1 and s["length"] == 1, "the reaper to drop it")
    assert await drain_values(http, "ttl") == ["long"]


async def test_ttl_counts_from_the_end_of_the_delay(http: httpx.AsyncClient) -> None:
    added_at = time.monotonic()
    await add(http, "dt", "kept", delay=0.4, ttl=1.5)
    await add(http, "dt", "dropped", delay=0.3, ttl=0.2)
    # "kept" is visible from 0.4 s to 1.9 s; "dropped" from 0.3 s to 0.5 s and is dropped.
    got = await http.get("/q/dt", params={"wait": 3})
    assert time.monotonic() - added_at >= 0.3
    values = [got.json()["value"]]
    if values == ["dropped"]:  # it was still visible when the long-poll woke up: fine, it was consumed in time
        values.append((await http.get("/q/dt", params={"wait": 3})).json()["value"])
        assert values == ["dropped", "kept"]
    else:
        assert values == ["kept"]
        assert (await stats(http, "dt"))["expired"] == 1


async def test_ttl_does_not_drop_a_leased_message(http: httpx.AsyncClient) -> None:
    key = await add(http, "tl", "x", ttl=0.3)
    assert (await http.get("/q/tl", params={"lease": 30})).json()["key"] == key
    started = time.monotonic()

    async def still_leased() -> bool:
        current = await stats(http, "tl")
        return bool(current["leased"] == 1 and current["expired"] == 0)

    while time.monotonic() - started < 0.8:  # well past the ttl, with the reaper running
        assert await still_leased()
        await asyncio.sleep(0.05)
    acked = await http.delete(f"/q/tl/{key}", params={"count": 1})
    assert acked.status_code == 200
    assert (await stats(http, "tl"))["acked"] == 1


async def test_a_lease_that_expires_after_the_ttl_drops_the_message(http: httpx.AsyncClient) -> None:
    await add(http, "tle", "x", ttl=0.2)
    assert (await http.get("/q/tle", params={"lease": 0.5})).status_code == 200
    current = await wait_stats(http, "tle", lambda s: s["leased"] == 0, "the lease to expire")
    await wait_stats(http, "tle", lambda s: s["expired"] == 1 and s["length"] == 0, "the ttl to drop it")
    assert current["delayed"] == 0
    assert (await http.get("/q/tle")).status_code == 204


async def test_priorities_higher_first_fifo_within_a_priority(http: httpx.AsyncClient) -> None:
    for value, priority in (("a0", 0), ("b5", 5), ("c9", 9), ("d5", 5), ("e0", 0), ("f9", 9), ("g1", 1)):
        await add(http, "prio", value, priority=priority)
    assert await drain_values(http, "prio") == ["c9", "f9", "b5", "d5", "g1", "a0", "e0"]


async def test_priority_in_a_batch_and_the_json_protocol(http: httpx.AsyncClient) -> None:
    await http.post("/q/pb", json=["low1", "low2"])
    await http.post("/q/pb?priority=7", json=["hi1", "hi2"])
    reply = await http.post("/queue", json={"cmd": "add", "queue": "pb", "value": "mid", "priority": 3})
    assert reply.status_code == 200
    assert await drain_values(http, "pb") == ["hi1", "hi2", "mid", "low1", "low2"]


async def test_an_expired_lease_goes_back_to_the_head_of_its_priority(http: httpx.AsyncClient) -> None:
    await add(http, "pl", "x1", priority=5)
    await add(http, "pl", "x2", priority=5)
    await add(http, "pl", "y1", priority=1)
    leased = await http.get("/q/pl", params={"lease": 0.3})
    assert leased.json()["value"] == "x1"
    await add(http, "pl", "z9", priority=9)
    await add(http, "pl", "x3", priority=5)
    await wait_stats(http, "pl", lambda s: s["leased"] == 0 and s["length"] == 5, "the lease to expire")
    got = [(m["value"], m["count"]) for m in (await http.get("/q/pl", params={"count": 10})).json()]
    assert got == [("z9", 1), ("x1", 2), ("x2", 1), ("x3", 1), ("y1", 1)]


async def test_a_released_message_goes_back_to_the_head_of_its_priority(http: httpx.AsyncClient) -> None:
    await add(http, "pr", "low", priority=0)
    await add(http, "pr", "a", priority=4)
    await add(http, "pr", "b", priority=4)
    key = (await http.get("/q/pr", params={"lease": 30})).json()["key"]
    assert (await http.post(f"/q/pr/{key}/release")).status_code == 200
    assert await drain_values(http, "pr") == ["a", "b", "low"]


async def test_a_delayed_release_keeps_its_priority(http: httpx.AsyncClient) -> None:
    await add(http, "prd", "low", priority=0)
    await add(http, "prd", "high", priority=8)
    key = (await http.get("/q/prd", params={"lease": 30})).json()["key"]
    assert (await http.post(f"/q/prd/{key}/release", params={"delay": 0.3})).status_code == 200
    await wait_stats(http, "prd", lambda s: s["delayed"] == 0 and s["length"] == 2, "the release to come due")
    assert await drain_values(http, "prd") == ["high", "low"]
