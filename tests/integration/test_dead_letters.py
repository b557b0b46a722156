"""max_deliveries, the <queue>:dead dead-letter queue, its origin records and redrive (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest
import redis

from restmq.core.model import PopMode
from restmq.storage import keys
from restmq.storage.node import RedisStore
from tests.helpers.queues import stats, wait_stats

pytestmark = pytest.mark.integration


async def set_max_deliveries(http: httpx.AsyncClient, queue: str, n: int) -> None:
    reply = await http.post(f"/control/{queue}", data={"max_deliveries": str(n)})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"queue": queue, "status": "start", "max_deliveries": n}


async def lease_until_expired(http: httpx.AsyncClient, queue: str, expected_count: int) -> None:
    got = await http.get(f"/q/{queue}", params={"lease": 0.2})
    assert got.status_code == 200, got.text
    assert got.json()["count"] == expected_count
    await wait_stats(http, queue, lambda s: s["leased"] == 0, "the lease to expire", timeout=30)


async def soft_get(http: httpx.AsyncClient, queue: str) -> dict[str, Any]:
    reply = await http.post("/queue", json={"cmd": "get", "queue": queue})
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def test_a_message_leased_too_often_is_dead_lettered_and_redriven(
    http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    await set_max_deliveries(http, "jobs", 2)
    for value in ("poison", "second"):
        assert (await http.post("/q/jobs", data={"value": value})).status_code == 200
    for count in (1, 2):  # "poison" is at the head each time: an expired lease returns it there
        await lease_until_expired(http, "jobs", count)
    current = await wait_stats(http, "jobs", lambda s: s["dead"] == 1, "the dead letter")
    assert (current["length"], current["leased"], current["dead_lettered"], current["redelivered"]) == (1, 0, 1, 2)
    assert (await stats(http, "jobs:dead"))["length"] == 1

    origin = redis_client.hgetall(keys.queue_keys("jobs:dead").origin)
    assert list(origin) == ["1"]
    record = orjson.loads(origin["1"])
    assert (record["queue"], record["key"], record["count"]) == ("jobs", "jobs:1", 2)
    assert isinstance(record["dead_at"], int)

    listed = await http.get("/q/", headers={"Accept": "application/json"})
    assert "jobs:dead" in listed.json()["queues"]

    # The other message dies too; one dead letter is consumed, the other is redriven.
    assert (await http.get("/q/jobs", params={"lease": 30})).json()["key"] == "jobs:2"
    assert (await http.post("/q/jobs/jobs:2/release")).status_code == 200  # count 1: not dead yet
    await lease_until_expired(http, "jobs", 2)
    await wait_stats(http, "jobs", lambda s: s["dead"] == 2 and s["length"] == 0, "the second dead letter")

    dead = await http.get("/q/jobs:dead")
    assert dead.json() == {"key": "jobs:dead:1", "value": "poison", "count": 1}

    redriven = await http.post("/q/jobs:dead/redrive")
    assert redriven.status_code == 200, redriven.text
    assert redriven.json() == {"queue": "jobs:dead", "target": "jobs", "moved": 1}
    current = await stats(http, "jobs")
    assert (current["dead"], current["length"]) == (0, 1)
    assert redis_client.hlen(keys.queue_keys("jobs:dead").origin) == 0
    back = await http.get("/q/jobs", params={"lease": 30})
    assert back.json() == {"key": "jobs:3", "value": "second", "count": 1}  # a new message, fresh count
    assert (await http.delete("/q/jobs/jobs:3")).status_code == 200


async def test_release_of_the_last_allowed_delivery_dead_letters(http: httpx.AsyncClient) -> None:
    await set_max_deliveries(http, "rel", 1)
    await http.post("/q/rel", data={"value": "x"})
    assert (await http.get("/q/rel", params={"lease": 30})).json()["count"] == 1
    released = await http.post("/q/rel/rel:1/release", params={"count": 1})
    assert released.status_code == 200
    current = await stats(http, "rel")
    assert (current["dead"], current["length"], current["leased"]) == (1, 0, 0)
    assert (await http.get("/q/rel:dead")).json()["value"] == "x"


async def test_soft_get_counts_agree_with_lease_counts(http: httpx.AsyncClient) -> None:
    await set_max_deliveries(http, "soft", 2)
    await http.post("/q/soft", data={"value": "x"})
    await lease_until_expired(http, "soft", 1)
    got = await soft_get(http, "soft")
    assert got == {"queue": "soft", "value": "x", "key": "soft:1", "count": 2}
    # delivered twice without an ack: the next delivery attempt dead-letters it
    assert await soft_get(http, "soft") == {"error": "empty queue", "code": "QUEUE_EMPTY"}
    current = await stats(http, "soft")
    assert (current["dead"], current["length"]) == (1, 0)


async def test_a_lease_never_exceeds_max_deliveries_after_soft_gets(http: httpx.AsyncClient) -> None:
    await set_max_deliveries(http, "peeked", 2)
    await http.post("/q/peeked", data={"value": "x"})
    assert (await soft_get(http, "peeked"))["count"] == 1
    assert (await soft_get(http, "peeked"))["count"] == 2
    # Already delivered twice: neither a lease nor a take may deliver it a third time.
    assert (await http.get("/q/peeked", params={"lease": 30})).status_code == 204
    current = await stats(http, "peeked")
    assert (current["dead"], current["length"], current["leased"]) == (1, 0, 0)


async def test_lowering_max_deliveries_applies_to_waiting_messages(http: httpx.AsyncClient) -> None:
    await http.post("/q/lower", data={"value": "x"})
    await lease_until_expired(http, "lower", 1)
    await lease_until_expired(http, "lower", 2)
    await set_max_deliveries(http, "lower", 2)
    assert (await http.get("/q/lower")).status_code == 204
    assert (await stats(http, "lower"))["dead"] == 1


async def test_unlimited_by_default_and_validation(http: httpx.AsyncClient) -> None:
    assert (await http.get("/control/free")).json() == {"queue": "free", "status": "start", "max_deliveries": 0}
    await http.post("/q/free", data={"value": "x"})
    for count in (1, 2, 3):
        await lease_until_expired(http, "free", count)
    assert (await stats(http, "free"))["dead"] == 0
    for bad in ("-1", "abc"):
        reply = await http.post("/control/free", data={"max_deliveries": bad})
        assert reply.status_code == 400, reply.text
    redrive_normal = await http.post("/q/free/redrive")
    assert redrive_normal.status_code == 400


async def test_dead_letter_queues_are_not_dead_lettered_again(http: httpx.AsyncClient) -> None:
    await set_max_deliveries(http, "dd", 1)
    await set_max_deliveries(http, "dd:dead", 1)
    await http.post("/q/dd", data={"value": "x"})
    await lease_until_expired(http, "dd", 1)
    await wait_stats(http, "dd", lambda s: s["dead"] == 1, "the dead letter")
    await lease_until_expired(http, "dd:dead", 1)
    await lease_until_expired(http, "dd:dead", 2)
    assert (await stats(http, "dd:dead"))["length"] == 1
    listed = (await http.get("/q/", headers={"Accept": "application/json"})).json()["queues"]
    assert "dd:dead:dead" not in listed


async def test_pops_carry_the_dead_letter_keys_once_the_queue_has_max_deliveries(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pop sends the dead-letter queue's nine keys only for a queue this store has seen with max_deliveries: a
    queue that gained one since answers 'dead_keys' without changing anything, and the call is made again."""
    store = RedisStore.from_url(redis_url)
    sent: list[tuple[str, int]] = []
    run = store.scripts.run

    async def counted(name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        sent.append((name, len(keys_)))
        return await run(name, keys_, args)

    monkeypatch.setattr(store.scripts, "run", counted)
    try:
        await store.add("limited", ["a", "b"])
        assert [m.value for m in (await store.pop("limited", PopMode.TAKE)).messages] == ["a"]
        await store.update_settings("limited", max_deliveries=1)
        sent.clear()
        peeked = (await store.pop("limited", PopMode.PEEK)).messages
        assert [(m.value, m.count) for m in peeked] == [("b", 1)]
        assert (await store.pop("limited", PopMode.TAKE)).messages == []  # delivered max_deliveries times already
        assert [n for name, n in sent if name == "pop"] == [10, 19, 19]  # without, refused, with; then with at once
        dead = (await store.stats(["limited:dead"]))[0]
        assert dead.length == 1
        assert [m.value for m in (await store.pop("limited:dead", PopMode.TAKE)).messages] == ["b"]
        assert sent[-1] == ("pop", 10)  # a dead-letter queue dead-letters nothing
    finally:
        await store.close()
