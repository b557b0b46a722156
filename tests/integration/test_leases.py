"""Leases over REST (SPEC section 4): hide, ack, release, extend, expiry through the reaper, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from restmq.storage import keys
from tests.helpers.queues import add, lease, stats, wait_stats
from tests.helpers.wait import wait_for, wait_parked

pytestmark = pytest.mark.integration


async def stays(predicate: Callable[[], Any], seconds: float) -> None:
    """Assert that an async condition holds for the whole of `seconds` (checked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await predicate()
        await asyncio.sleep(0.05)


async def test_lease_hides_the_message_until_acked(http: httpx.AsyncClient) -> None:
    key = await add(http, "work", "job")
    got = await lease(http, "work", 30)
    assert got == {"key": key, "value": "job", "count": 1}
    assert (await http.get("/q/work", params={"lease": 30})).status_code == 204
    assert (await http.get("/q/work")).status_code == 204
    current = await stats(http, "work")
    assert (current["length"], current["leased"]) == (0, 1)

    acked = await http.delete(f"/q/work/{key}")
    assert acked.status_code == 200, acked.text
    assert acked.json() == {"queue": "work", "key": key, "count": 1, "status": "ack"}
    current = await stats(http, "work")
    assert (current["length"], current["leased"], current["acked"]) == (0, 0, 1)
    assert (await http.get("/q/work")).status_code == 204
    again = await http.delete(f"/q/work/{key}")
    assert again.status_code == 404
    assert again.json()["code"] == "MESSAGE_NOT_FOUND"


async def test_ack_with_a_stale_count_leaves_the_new_delivery_alone(http: httpx.AsyncClient) -> None:
    key = await add(http, "stale", "job")
    assert (await lease(http, "stale", 0.2))["count"] == 1
    await wait_stats(http, "stale", lambda s: s["leased"] == 0 and s["length"] == 1, "the lease to expire")
    assert (await lease(http, "stale", 30))["count"] == 2

    late = await http.delete(f"/q/stale/{key}", params={"count": 1})
    assert late.status_code == 409
    assert late.json()["code"] == "LEASE_STALE"
    for action in ("release", "extend"):
        reply = await http.post(f"/q/stale/{key}/{action}", params={"count": 1, "lease": 5})
        assert reply.status_code == 409 and reply.json()["code"] == "LEASE_STALE", reply.text
    current = await stats(http, "stale")
    assert (current["leased"], current["acked"]) == (1, 0)  # the second delivery is still leased

    ok = await http.delete(f"/q/stale/{key}", params={"count": 2})
    assert ok.status_code == 200 and ok.json()["count"] == 2
    assert (await stats(http, "stale"))["acked"] == 1


async def test_settling_after_the_lease_expired_is_a_conflict(http: httpx.AsyncClient) -> None:
    key = await add(http, "late", "job")
    await lease(http, "late", 0.2)
    await wait_stats(http, "late", lambda s: s["leased"] == 0 and s["length"] == 1, "the lease to expire")
    for params in ({}, {"count": 1}):
        reply = await http.delete(f"/q/late/{key}", params=params)
        assert reply.status_code == 409, reply.text
        assert reply.json()["code"] == "LEASE_EXPIRED"
    for action in ("release", "extend"):
        reply = await http.post(f"/q/late/{key}/{action}", params={"lease": 5})
        assert reply.status_code == 409 and reply.json()["code"] == "LEASE_EXPIRED", reply.text
    # Nothing was lost: the message is back, and its next delivery is the second.
    assert (await http.get("/q/late")).json() == {"key": key, "value": "job", "count": 2}


async def test_settling_unknown_or_malformed_keys(http: httpx.AsyncClient) -> None:
    await add(http, "keys", "job")
    for method, path in (
        ("DELETE", "/q/keys/keys:99"),
        ("POST", "/q/keys/keys:99/release"),
        ("POST", "/q/keys/keys:99/extend?lease=5"),
        ("DELETE", "/q/nothing/nothing:1"),
    ):
        reply = await http.request(method, path)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json()["code"] == "MESSAGE_NOT_FOUND"
    for path in ("/q/keys/other:1", "/q/keys/keys:abc", "/q/keys/keys:0", "/q/keys/keys:01"):
        reply = await http.delete(path)
        assert reply.status_code == 400, (path, reply.text)
    # a message that exists but was never leased
    reply = await http.delete("/q/keys/keys:1")
    assert reply.status_code == 409 and reply.json()["code"] == "LEASE_EXPIRED"
    assert (await stats(http, "keys"))["length"] == 1


async def test_release_puts_it_back_at_the_head(http: httpx.AsyncClient) -> None:
    first = await add(http, "rel", "a")
    await add(http, "rel", "b")
    got = await lease(http, "rel", 30)
    assert got["key"] == first
    released = await http.post(f"/q/rel/{first}/release", params={"count": 1})
    assert released.status_code == 200, released.text
    assert released.json() == {"queue": "rel", "key": first, "count": 1, "status": "release"}
    current = await stats(http, "rel")
    assert (current["length"], current["leased"]) == (2, 0)
    assert (await http.get("/q/rel")).json() == {"key": first, "value": "a", "count": 2}
    assert (await http.get("/q/rel")).json()["value"] == "b"


async def test_release_with_delay_hides_it_for_that_long(http: httpx.AsyncClient) -> None:
    key = await add(http, "reld", "a")
    await lease(http, "reld", 30)
    released_at = time.monotonic()
    reply = await http.post(f"/q/reld/{key}/release", data={"delay": "0.6"})
    assert reply.status_code == 200, reply.text
    current = await stats(http, "reld")
    assert (current["delayed"], current["leased"], current["length"]) == (1, 0, 0)
    assert (await http.get("/q/reld")).status_code == 204

    async def visible() -> httpx.Response | None:
        got = await http.get("/q/reld")
        return got if got.status_code == 200 else None

    got = await wait_for(visible, 10.0, 0.02, "the delayed release to come due")
    assert got is not None
    elapsed = time.monotonic() - released_at
    assert 0.55 <= elapsed < 4.0, elapsed  # due at 0.6 s; room for a loaded machine
    assert got.json() == {"key": key, "value": "a", "count": 2}


async def test_extend_keeps_it_hidden_past_the_original_lease(
    http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    key = await add(http, "ext", "a")
    leased_at = time.monotonic()
    await lease(http, "ext", 2)  # long enough that the extend arrives in time on a loaded machine
    reply = await http.post(f"/q/ext/{key}/extend", params={"lease": 8, "count": 1})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"queue": "ext", "key": key, "count": 1, "status": "extend"}
    now_s, now_us = redis_client.time()
    deadline = redis_client.zscore(keys.queue_keys("ext").leased, "1")
    assert deadline is not None and deadline - (now_s * 1000 + now_us // 1000) > 7000

    async def hidden() -> bool:
        current = await stats(http, "ext")
        return bool(current["leased"] == 1 and current["length"] == 0)

    await stays(hidden, leased_at + 2.75 - time.monotonic())  # three reaper intervals past the original 2 s lease
    assert (await http.get("/q/ext")).status_code == 204
    assert (await http.delete(f"/q/ext/{key}", params={"count": 1})).status_code == 200


async def test_an_expired_lease_comes_back_at_the_head_through_the_reaper(http: httpx.AsyncClient) -> None:
    first = await add(http, "exp", "a")
    await add(http, "exp", "b")
    assert (await lease(http, "exp", 0.5))["key"] == first
    expires_at = time.monotonic() + 0.5
    # No consumer touches the queue meanwhile: only the reaper can bring it back.
    await wait_stats(http, "exp", lambda s: s["leased"] == 0 and s["length"] == 2, "the reaper", 10.0)
    assert time.monotonic() - expires_at < 3.0  # the reaper runs every 0.25 s (room for a loaded machine)
    current = await stats(http, "exp")
    assert current["redelivered"] == 1
    assert (await http.get("/q/exp")).json() == {"key": first, "value": "a", "count": 2}
    assert (await http.get("/q/exp")).json()["value"] == "b"


async def test_leases_of_a_batch_come_back_in_their_order(http: httpx.AsyncClient) -> None:
    reply = await http.post("/q/batch", json=[f"m{i}" for i in range(12)])
    assert reply.status_code == 200
    got = await http.get("/q/batch", params={"lease": 0.3, "count": 12})
    assert [m["value"] for m in got.json()] == [f"m{i}" for i in range(12)]
    await wait_stats(http, "batch", lambda s: s["leased"] == 0 and s["length"] == 12, "the reaper")
    again = await http.get("/q/batch", params={"count": 12})
    assert [m["value"] for m in again.json()] == [f"m{i}" for i in range(12)]
    assert {m["count"] for m in again.json()} == {2}


async def test_lease_with_wait_and_count(http: httpx.AsyncClient) -> None:
    waiting = asyncio.create_task(http.get("/q/lw", params={"lease": 30, "wait": 5, "count": 3}))
    await wait_parked(http, 1)  # the long-poll is waiting (it would also work if it had not)
    assert not waiting.done()
    added = await http.post("/q/lw", json=["a", "b", "c", "d"])
    assert added.json() == {"keys": ["lw:1", "lw:2", "lw:3", "lw:4"]}
    reply = await asyncio.wait_for(waiting, 5)
    assert reply.status_code == 200
    assert reply.json() == [{"key": f"lw:{i}", "value": v, "count": 1} for i, v in ((1, "a"), (2, "b"), (3, "c"))]
    current = await stats(http, "lw")
    assert (current["leased"], current["length"]) == (3, 1)

    # On an empty queue the long-poll ends with 204 after its wait.
    for key in ("lw:1", "lw:2", "lw:3"):
        assert (await http.delete(f"/q/lw/{key}")).status_code == 200
    assert (await http.get("/q/lw", params={"lease": 30, "count": 5})).json()[0]["key"] == "lw:4"
    started = time.monotonic()
    empty = await http.get("/q/lw", params={"lease": 30, "wait": 0.3, "count": 2})
    assert empty.status_code == 204
    assert time.monotonic() - started >= 0.25


@pytest.mark.parametrize("value", ["-1", "abc", "0", "1e9", "43201", "nan", "inf", ""])
async def test_bad_lease_values_are_refused(http: httpx.AsyncClient, value: str) -> None:
    await add(http, "bad", "job")
    reply = await http.get(f"/q/bad?lease={value}")
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == "PARAMETER_INVALID"
    assert (await stats(http, "bad"))["length"] == 1  # nothing was consumed


async def test_bad_settle_parameters_are_refused(http: httpx.AsyncClient) -> None:
    key = await add(http, "bads", "job")
    await lease(http, "bads", 30)
    for path, params in (
        (f"/q/bads/{key}/extend", {"lease": "-1"}),
        (f"/q/bads/{key}/extend", {"lease": "abc"}),
        (f"/q/bads/{key}/extend", {"lease": "0"}),
        (f"/q/bads/{key}/extend", {"lease": "1e9"}),
        (f"/q/bads/{key}/release", {"delay": "-1"}),
        (f"/q/bads/{key}/release", {"delay": "abc"}),
        (f"/q/bads/{key}/release", {"count": "x"}),
    ):
        reply = await http.post(path, params=params)
        assert reply.status_code == 400, (path, params, reply.text)
    missing = await http.post(f"/q/bads/{key}/extend")
    assert missing.status_code == 400 and missing.json()["code"] == "FIELD_MISSING"
    assert (await stats(http, "bads"))["leased"] == 1  # still leased, untouched


async def test_many_leases_expiring_together_all_come_back_promptly(http: httpx.AsyncClient) -> None:
    """A consumer fleet dies holding 10,000 leases: the reaper brings them all back within seconds,
    not 200 per sweep (which would take over 12 s)."""
    for _ in range(2):
        assert (await http.post("/q/mass", json=["x"] * 5_000)).status_code == 200
    for _ in range(10):
        got = await http.get("/q/mass", params={"lease": 0.5, "count": 1000})
        assert len(got.json()) == 1000
    expires_at = time.monotonic() + 0.5
    await wait_stats(http, "mass", lambda s: s["leased"] == 0 and s["length"] == 10_000, "all leases back", 8.0)
    assert time.monotonic() - expires_at < 5.0
    assert (await stats(http, "mass"))["redelivered"] == 10_000
