"""One functional suite over every backend mode (SPEC section 1): one node, a ring of 3 nodes, Redis Cluster.

Each test gets RestMQ in-process on freshly flushed backends through the `topology` fixture, so the same
assertions hold on a single Valkey, on a consistent-hash ring (where message numbers start at i * 10^12 on
node i: tests use the keys the server returns, never guessed ones) and on a 3-master Redis Cluster.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from restmq.core import service
from tests.helpers.queues import add, add_batch, drain, stats, take, wait_stats
from tests.helpers.streams import sse, wait_consumers
from tests.helpers.wait import wait_for, wait_parked

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(topology: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=topology, timeout=30) as client:
        yield client


def number(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


# -- producing and consuming ------------------------------------------------------------------------


async def test_add_then_get_is_fifo(http: httpx.AsyncClient) -> None:
    added = [await add(http, "fifo", f"m{i}") for i in range(20)]
    assert all(key.startswith("fifo:") for key in added)
    assert [number(k) for k in added] == sorted(number(k) for k in added)
    assert len(set(added)) == 20
    got = await drain(http, "fifo")
    assert [(m["key"], m["value"], m["count"]) for m in got] == [(k, f"m{i}", 1) for i, k in enumerate(added)]
    assert (await http.get("/", params={"queue": "fifo"})).status_code == 404


async def test_batch_add_is_all_or_nothing(http: httpx.AsyncClient) -> None:
    keys = await add_batch(http, "batch", ["a", "b", {"c": 1}])
    assert [number(k) for k in keys] == list(range(number(keys[0]), number(keys[0]) + 3))

    too_big = await http.post("/q/batch", json=["ok", "x" * (1024 * 1024 + 1)])
    assert too_big.status_code == 413, too_big.text
    broken = await http.post(
        "/q/batch", content=b'"d"\n{not json\n"e"\n', headers={"Content-Type": "application/x-ndjson"}
    )
    assert broken.status_code == 400, broken.text
    assert (await stats(http, "batch"))["length"] == 3

    ndjson = await http.post("/q/batch", content=b'"d"\n"e"\n', headers={"Content-Type": "application/x-ndjson"})
    assert ndjson.status_code == 200, ndjson.text
    assert [m["value"] for m in await drain(http, "batch")] == ["a", "b", '{"c":1}', "d", "e"]


async def test_count_returns_up_to_n_in_order(http: httpx.AsyncClient) -> None:
    keys = await add_batch(http, "counted", [f"v{i}" for i in range(7)])
    first = await http.get("/q/counted", params={"count": 3})
    assert first.status_code == 200
    assert [m["key"] for m in first.json()] == keys[:3]
    rest = await http.get("/q/counted", params={"count": 10})
    assert [m["key"] for m in rest.json()] == keys[3:]
    assert (await http.get("/q/counted", params={"count": 10})).status_code == 204


async def test_long_poll_returns_as_soon_as_a_message_arrives(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SAFETY_RECHECK", 60.0)  # only the add can end the wait early
    started = time.monotonic()
    empty = await http.get("/q/poll", params={"wait": 0.5})
    assert empty.status_code == 204
    assert time.monotonic() - started >= 0.45

    waiting = asyncio.create_task(http.get("/q/poll", params={"wait": 20}))
    await wait_parked(http, 1)  # the long-poll is parked: an add from now on wakes it
    assert not waiting.done()
    added_at = time.monotonic()
    key = await add(http, "poll", "late")
    reply = await asyncio.wait_for(waiting, 20)
    assert reply.status_code == 200
    assert reply.json() == {"key": key, "value": "late", "count": 1}
    # a lost wake would leave it waiting its 20 s; room for a loaded machine
    assert time.monotonic() - added_at < 5, "the long-poll waited long after the message arrived"


async def test_json_protocol_add_get_take_del(http: httpx.AsyncClient) -> None:
    async def command(**fields: object) -> dict[str, Any]:
        reply = await http.post("/queue", json=fields)
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    one = await command(cmd="add", queue="proto", value="one")
    two = await command(cmd="add", queue="proto", value={"n": 2})
    assert one["queue"] == "proto" and one["value"] == "one" and one["key"].startswith("proto:")
    assert await command(cmd="get", queue="proto") == {"queue": "proto", "value": "one", "key": one["key"], "count": 1}
    assert (await command(cmd="get", queue="proto"))["count"] == 2  # soft get: stays at the head
    assert await command(cmd="take", queue="proto") == {
        "queue": "proto",
        "value": "one",
        "key": one["key"],
        "count": 3,
    }
    assert await command(cmd="del", queue="proto", key=two["key"]) == {
        "queue": "proto",
        "key": two["key"],
        "deleted": True,
    }
    assert (await command(cmd="take", queue="proto"))["error"] == "empty queue"
    form = await http.post("/queue", data={"body": '{"cmd": "add", "queue": "proto", "value": "f"}'})
    assert form.status_code == 200 and form.json()["value"] == "f"


# -- leases, dead letters, timers ---------------------------------------------------------------------


async def test_leases_ack_release_and_expiry(http: httpx.AsyncClient) -> None:
    first = await add(http, "lease", "a")
    second = await add(http, "lease", "b")

    got = await take(http, "lease", lease=30)
    assert got == {"key": first, "value": "a", "count": 1}
    acked = await http.delete(f"/q/lease/{first}")
    assert acked.status_code == 200 and acked.json()["status"] == "ack"
    assert (await http.delete(f"/q/lease/{first}")).status_code == 404

    assert (await take(http, "lease", lease=30)) == {"key": second, "value": "b", "count": 1}
    released = await http.post(f"/q/lease/{second}/release")
    assert released.status_code == 200, released.text
    assert (await take(http, "lease", lease=0.3)) == {"key": second, "value": "b", "count": 2}
    assert (await stats(http, "lease"))["leased"] == 1
    # the reaper returns the expired lease to the head of the queue
    await wait_stats(http, "lease", lambda s: s["leased"] == 0 and s["length"] == 1, "the lease to expire", 10.0)
    assert (await take(http, "lease")) == {"key": second, "value": "b", "count": 3}
    current = await stats(http, "lease")
    assert current["acked"] == 1 and current["redelivered"] >= 1  # the expired lease at least


async def test_max_deliveries_dead_letters_and_redrive(http: httpx.AsyncClient) -> None:
    limit = await http.post("/control/poison", data={"max_deliveries": "2"})
    assert limit.json() == {"queue": "poison", "status": "start", "max_deliveries": 2}
    key = await add(http, "poison", "bad")
    for count in (1, 2):
        got = await take(http, "poison", lease=0.2)
        assert got is not None and (got["key"], got["count"]) == (key, count)
        await wait_stats(http, "poison", lambda s: s["leased"] == 0, "the lease to expire", 10.0)
    current = await wait_stats(http, "poison", lambda s: s["dead"] == 1, "the dead letter", 10.0)
    assert current["length"] == 0
    assert (await stats(http, "poison:dead"))["length"] == 1
    listed = await http.get("/q/", headers={"Accept": "application/json"})
    assert "poison:dead" in listed.json()["queues"]

    redriven = await http.post("/q/poison:dead/redrive")
    assert redriven.json() == {"queue": "poison:dead", "target": "poison", "moved": 1}
    back = await take(http, "poison")
    assert back is not None and (back["value"], back["count"]) == ("bad", 1)
    assert (await stats(http, "poison"))["dead"] == 0


async def test_delay_hides_a_message_until_due(http: httpx.AsyncClient) -> None:
    added_at = time.monotonic()
    key = await add(http, "later", "soon", delay=0.6)
    assert await take(http, "later") is None
    assert (await stats(http, "later"))["delayed"] == 1

    async def arrived() -> dict[str, Any] | None:
        return await take(http, "later")

    got = await wait_for(arrived, 10.0, 0.05, "the delayed message")
    assert got == {"key": key, "value": "soon", "count": 1}
    assert time.monotonic() - added_at >= 0.5


async def test_priority_first_then_fifo(http: httpx.AsyncClient) -> None:
    for value, priority in (("low-1", 0), ("low-2", 0), ("high", 9), ("mid-1", 5), ("mid-2", 5)):
        await add(http, "prio", value, priority=priority)
    assert [m["value"] for m in await drain(http, "prio")] == ["high", "mid-1", "mid-2", "low-1", "low-2"]


async def test_idempotency_key_returns_the_first_key(http: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = await http.post("/q/idem", data={"value": "x"}, headers=headers)
    again = await http.post("/q/idem", data={"value": "x"}, headers=headers)
    other = await http.post("/q/idem", data={"value": "y"}, headers={"Idempotency-Key": "order-18"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.text == first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [m["value"] for m in await drain(http, "idem")] == ["x", "y"]


async def test_stop_pauses_consumers_and_start_resumes(http: httpx.AsyncClient) -> None:
    stopped = await http.post("/control/flow", data={"status": "stop"})
    assert stopped.json()["status"] == "stop"
    key = await add(http, "flow", "held")
    paused = await http.get("/q/flow")
    assert paused.status_code == 204 and paused.headers.get("X-RestMQ-Status") == "stop"
    assert (await http.get("/control/flow")).json()["status"] == "stop"
    assert (await http.post("/control/flow", data={"status": "start"})).json()["status"] == "start"
    assert await take(http, "flow") == {"key": key, "value": "held", "count": 1}


async def test_delete_purges_the_queue(http: httpx.AsyncClient) -> None:
    await add_batch(http, "gone", ["a", "b", "c"])
    purged = await http.delete("/q/gone")
    assert purged.json() == {"queue": "gone", "status": 3}
    assert await take(http, "gone") is None
    listed = await http.get("/q/", headers={"Accept": "application/json"})
    assert "gone" not in listed.json()["queues"]


async def test_stats_aggregate_every_queue(http: httpx.AsyncClient) -> None:
    names = [f"s{i:02}" for i in range(30)]  # on a ring these land on every node
    for i, name in enumerate(names):
        await add_batch(http, name, ["x"] * (i + 1))
    await take(http, "s05", lease=30)

    every = await http.get("/stats/")
    assert every.status_code == 200
    body = every.json()
    assert body["count"] == 30
    assert {row["queue"]: row["length"] for row in body["queues"]} == {
        name: i + 1 - (name == "s05") for i, name in enumerate(names)
    }
    assert body["nodes"] and set(body["nodes"].values()) == {"up"}
    assert (await http.get("/stats")).json()["count"] == 30

    one = await stats(http, "s05")
    assert (one["queue"], one["length"], one["leased"], one["added"], one["delivered"]) == ("s05", 5, 1, 6, 1)
    assert (one["policy"], one["status"]) == ("broadcast", "start")
    ready = await http.get("/ready")
    assert ready.status_code == 200 and ready.json()["nodes"] == body["nodes"]


# -- streaming ----------------------------------------------------------------------------------------


async def test_broadcast_gives_every_sse_consumer_every_message_in_order(
    topology: str, http: httpx.AsyncClient
) -> None:
    async with sse(topology, "news") as one, sse(topology, "news") as two:
        await wait_consumers(http, topology, "news", 2)
        keys = []
        for start in range(0, 60, 20):
            keys += await add_batch(http, "news", [f"n{i}" for i in range(start, start + 20)])
        await one.wait_count(60)
        await two.wait_count(60)
        assert one.keys == keys and two.keys == keys
        assert [m["value"] for m in one.messages] == [f"n{i}" for i in range(60)]
    assert await take(http, "news") is None


async def test_roundrobin_gives_each_message_to_one_consumer(topology: str, http: httpx.AsyncClient) -> None:
    assert (await http.post("/p/jobs", data={"policy": "roundrobin"})).json()["value"] == "roundrobin"
    async with sse(topology, "jobs") as one, sse(topology, "jobs") as two:
        await wait_consumers(http, topology, "jobs", 2)
        keys = []
        for i in range(40):
            keys.append(await add(http, "jobs", f"j{i}"))

        async def all_delivered() -> bool:
            return len(one.keys) + len(two.keys) >= 40

        await wait_for(all_delivered, 10.0, 0.02, "40 roundrobin deliveries")
        assert sorted(one.keys + two.keys) == sorted(keys)
        assert one.keys and two.keys, (len(one.keys), len(two.keys))
        for reader in (one, two):  # each consumer sees its share in queue order
            assert [number(k) for k in reader.keys] == sorted(number(k) for k in reader.keys)
    await wait_stats(http, "jobs", lambda s: s["leased"] == 0 and s["length"] == 0, "every delivery acked", 10.0)


async def test_sse_resume_gaps_only_when_broadcast_history_is_missing(topology: str, http: httpx.AsyncClient) -> None:
    """Issue 14: a reconnect after a roundrobin delivery gets no gap; a broadcast one within the retained
    history gets none either, and an unknown broadcast id exactly one."""
    assert (await http.post("/p/rr", data={"policy": "roundrobin"})).status_code == 200
    async with sse(topology, "rr") as first:
        await wait_consumers(http, topology, "rr", 1)
        await add(http, "rr", "one")
        await first.wait_count(1)
    async with sse(topology, "rr", last_event_id=first.keys[0]) as again:
        await wait_consumers(http, topology, "rr", 1)
        later = await add(http, "rr", "two")
        await again.wait_count(1)
    assert [e.event for e in again.events if e.event] == [] and again.keys == [later]

    async with sse(topology, "bc") as first:
        await wait_consumers(http, topology, "bc", 1)
        sent = await add_batch(http, "bc", ["a", "b", "c"])
        await first.wait_count(3)
    async with sse(topology, "bc", last_event_id=sent[0]) as again:
        await again.wait_count(2)
    assert [e.event for e in again.events if e.event] == [] and again.keys == sent[1:]
    async with sse(topology, "bc", last_event_id="bc:12345") as unknown:
        await unknown.wait_count(3)
    assert [e.event for e in unknown.events if e.event] == ["gap"] and unknown.keys == sent


# -- concurrency ----------------------------------------------------------------------------------------


async def test_concurrent_consumers_get_each_message_exactly_once(topology: str) -> None:
    total, consumers = 4000, 8  # 8 consumers x 500 messages on average
    queues = ["race-a", "race-b"]  # two queues: on a ring usually two nodes
    limits = httpx.Limits(max_connections=consumers + 2)
    async with httpx.AsyncClient(base_url=topology, timeout=30, limits=limits) as client:
        added: list[str] = []
        producing = True

        async def produce() -> None:
            nonlocal producing
            try:
                for start in range(0, total, 200):
                    queue = queues[(start // 200) % 2]
                    added.extend(await add_batch(client, queue, [f"{queue}-{start + i}" for i in range(200)]))
            finally:
                producing = False

        async def consume(count: int) -> list[str]:
            got: list[str] = []
            while True:
                done = not producing  # read before polling: an empty poll after that means drained
                progress = False
                for queue in queues:
                    params = {"count": count} if count > 1 else {}
                    reply = await client.get(f"/q/{queue}", params=params)
                    assert reply.status_code in (200, 204), reply.text
                    if reply.status_code == 200:
                        body = reply.json()
                        got.extend(m["key"] for m in (body if count > 1 else [body]))
                        progress = True
                if not progress and done:
                    return got

        producer = asyncio.create_task(produce())
        # half the consumers take one message per GET, half up to 10 (the HTTP client is the slow part here)
        results = await asyncio.gather(*(consume(1 if i % 2 else 10) for i in range(consumers)))
        await producer
        delivered = [key for got in results for key in got]
        duplicates = [key for key, n in collections.Counter(delivered).items() if n > 1]
        assert not duplicates, duplicates[:10]
        assert sorted(delivered) == sorted(added)
        assert len(delivered) == total
        assert all(got for got in results), [len(got) for got in results]
