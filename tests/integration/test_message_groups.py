"""Message groups (issue 18's FIFO queues; docs/semantics.md "Message groups"): the messages of one group are
delivered in the order added, at most one of them in flight at a time, on every topology."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from restmq.client.aio import AsyncClient
from restmq.core.model import PopMode
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from tests.helpers.lossy_link import lossy_link
from tests.helpers.queues import Message, Stats, add, stats, take, wait_stats
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import sse
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def add_grouped(http: httpx.AsyncClient, queue: str, group: str, *values: str, base: str = "") -> list[str]:
    return [await add(http, queue, value, group=group, base=base) for value in values]


async def lease_all(http: httpx.AsyncClient, queue: str, seconds: float, count: int = 10) -> list[Message]:
    reply = await http.get(f"/q/{queue}", params={"lease": seconds, "count": count})
    if reply.status_code == 204:
        return []
    assert reply.status_code == 200, reply.text
    got: list[Message] = reply.json()
    return got


def counts_are(*, leased: int, length: int) -> Callable[[Stats], bool]:
    return lambda s: (s["leased"], s["length"]) == (leased, length)


async def ack(http: httpx.AsyncClient, queue: str, key: str) -> None:
    reply = await http.delete(f"/q/{queue}/{key}")
    assert reply.status_code == 200, reply.text


async def test_one_message_of_a_group_in_flight_and_ack_unblocks(http: httpx.AsyncClient) -> None:
    a = await add_grouped(http, "jobs", "a", "a1", "a2", "a3")
    b = await add_grouped(http, "jobs", "b", "b1", "b2")
    plain = await add(http, "jobs", "plain")
    first = await lease_all(http, "jobs", 30)
    # one head per group, and the ungrouped message: in the order added
    assert [m["value"] for m in first] == ["a1", "b1", "plain"]
    assert (await stats(http, "jobs"))["length"] == 3  # a2, a3, b2 wait behind their heads
    assert await lease_all(http, "jobs", 30) == []
    await ack(http, "jobs", a[0])
    assert [m["key"] for m in await lease_all(http, "jobs", 30)] == [a[1]]
    await ack(http, "jobs", b[0])
    await ack(http, "jobs", a[1])
    assert [m["value"] for m in await lease_all(http, "jobs", 30)] == ["a3", "b2"]
    assert plain == first[2]["key"]


async def test_take_delivers_a_group_in_order_even_in_one_batch(http: httpx.AsyncClient) -> None:
    for i in range(5):
        await add_grouped(http, "orders", "g1", f"x{i}")
        await add_grouped(http, "orders", "g2", f"y{i}")
    reply = await http.get("/q/orders", params={"count": 7})
    values = [m["value"] for m in reply.json()]
    assert values == ["x0", "y0", "x1", "y1", "x2", "y2", "x3"]
    rest = [(await take(http, "orders")) for _ in range(3)]
    assert [m["value"] for m in rest if m] == ["y3", "x4", "y4"]
    assert await take(http, "orders") is None


async def test_expired_lease_redelivers_the_group_head_first(http: httpx.AsyncClient) -> None:
    keys_ = await add_grouped(http, "retry", "g", "first", "second")
    got = await lease_all(http, "retry", 0.2)
    assert [m["key"] for m in got] == [keys_[0]]
    await wait_stats(http, "retry", lambda s: s["leased"] == 0, "the lease to expire")
    again = await lease_all(http, "retry", 30)
    assert [(m["key"], m["count"]) for m in again] == [(keys_[0], 2)]
    await ack(http, "retry", keys_[0])
    assert [m["key"] for m in await lease_all(http, "retry", 30)] == [keys_[1]]


async def test_release_keeps_the_group_blocked_until_redelivered(http: httpx.AsyncClient) -> None:
    keys_ = await add_grouped(http, "rel", "g", "one", "two")
    await lease_all(http, "rel", 30)
    assert (await http.post(f"/q/rel/{keys_[0]}/release")).status_code == 200
    assert [m["key"] for m in await lease_all(http, "rel", 30)] == [keys_[0]]


async def test_dead_letter_unblocks_the_group(http: httpx.AsyncClient) -> None:
    assert (await http.post("/control/dl", data={"max_deliveries": 1})).status_code == 200
    keys_ = await add_grouped(http, "dl", "g", "poison", "next")
    await lease_all(http, "dl", 0.2)
    await wait_stats(http, "dl", lambda s: s["leased"] == 0 and s["dead"] == 1, "the poison message to die")
    assert [m["key"] for m in await lease_all(http, "dl", 30)] == [keys_[1]]
    redriven = await http.post("/q/dl:dead/redrive")
    assert redriven.status_code == 200, redriven.text
    # back in its group, behind the message in flight: delivered once that one is acked
    assert await lease_all(http, "dl", 30) == []
    await ack(http, "dl", keys_[1])
    again = await lease_all(http, "dl", 30)
    assert [(m["value"], m["count"]) for m in again] == [("poison", 1)]


async def test_delete_and_purge_unblock_the_group(http: httpx.AsyncClient) -> None:
    keys_ = await add_grouped(http, "del", "g", "one", "two", "three")
    await lease_all(http, "del", 30)
    reply = await http.post("/queue", json={"cmd": "del", "queue": "del", "key": keys_[0]})
    assert reply.json()["deleted"] is True
    # a parked message deleted: its group goes on without it
    reply = await http.post("/queue", json={"cmd": "del", "queue": "del", "key": keys_[1]})
    assert reply.json()["deleted"] is True
    assert [m["key"] for m in await lease_all(http, "del", 30)] == [keys_[2]]
    await add_grouped(http, "del", "g", "four")
    assert (await http.delete("/q/del")).status_code == 200
    assert (await stats(http, "del"))["length"] == 0
    fresh = await add_grouped(http, "del", "g", "five")
    assert [m["key"] for m in await lease_all(http, "del", 30)] == fresh


async def test_ttl_drop_of_the_head_unblocks_the_group(http: httpx.AsyncClient) -> None:
    await add(http, "ttl", "short", group="g", ttl=0.2)
    later = await add_grouped(http, "ttl", "g", "later")
    await wait_stats(http, "ttl", lambda s: s["expired"] == 1, "the head's ttl to pass", timeout=15)
    assert [m["key"] for m in await lease_all(http, "ttl", 30)] == later


async def test_bad_group_ids_and_combinations_are_refused(http: httpx.AsyncClient) -> None:
    for bad in ["", "a b", "x" * 129, "é", "tab\there"]:
        reply = await http.post("/q/bad", data={"value": "v", "group": bad})
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["code"] == "PARAMETER_INVALID"
    for extra in ({"priority": "3"}, {"delay": "5"}):
        reply = await http.post("/q/bad", data={"value": "v", "group": "g", **extra})
        assert reply.status_code == 400 and "group" in reply.json()["error"], reply.text
    assert (await stats(http, "bad"))["length"] == 0
    odd = "".join(chr(c) for c in range(0x21, 0x7F))[:128]  # every character SQS allows
    await add_grouped(http, "bad", odd, "ok")
    await add_grouped(http, "bad", odd[:5], "prefix")  # a group id that is a prefix of another stays apart
    assert [m["value"] for m in await lease_all(http, "bad", 30)] == ["ok", "prefix"]


async def test_batch_add_to_a_group_keeps_its_order(http: httpx.AsyncClient) -> None:
    reply = await http.post("/q/batch", params={"group": "g"}, json=["1", "2", "3"])
    assert reply.status_code == 200, reply.text
    got = [m["value"] for m in (await http.get("/q/batch", params={"count": 10})).json()]
    assert got == ["1", "2", "3"]


async def test_an_idempotent_retry_adds_nothing_to_the_group(http: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "once"}
    first = await http.post("/q/idem", data={"value": "v", "group": "g"}, headers=headers)
    again = await http.post("/q/idem", data={"value": "v", "group": "g"}, headers=headers)
    assert first.status_code == again.status_code == 200 and first.text == again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (await stats(http, "idem"))["length"] == 1


async def test_a_full_batch_in_one_group_is_delivered_in_order(http: httpx.AsyncClient) -> None:
    values = [str(i) for i in range(10_000)]
    reply = await http.post("/q/big", params={"group": "g"}, json=values)
    assert reply.status_code == 200, reply.text
    assert (await stats(http, "big"))["length"] == 10_000
    got: list[str] = []
    while len(got) < len(values):
        batch = await http.get("/q/big", params={"count": 1000})
        assert batch.status_code == 200, batch.text
        got += [m["value"] for m in batch.json()]
    assert got == values


async def test_json_protocol_adds_to_a_group(http: httpx.AsyncClient) -> None:
    for value in ("p1", "p2"):
        reply = await http.post("/queue", json={"cmd": "add", "queue": "proto", "value": value, "group": "g"})
        assert reply.status_code == 200, reply.text
    assert [m["value"] for m in await lease_all(http, "proto", 30)] == ["p1"]
    for bad in (7, ["g"], "a b"):
        reply = await http.post("/queue", json={"cmd": "add", "queue": "proto", "value": "v", "group": bad})
        assert reply.status_code == 400 and reply.json()["code"] == "PARAMETER_INVALID", reply.text


async def test_client_adds_to_a_group_and_acks_on_its_next_lease(server: str) -> None:
    async with AsyncClient(server, timeout=10) as client:
        await client.add_batch("cli", ["c1", "c2", "c3"], group="g")
        await client.add("cli", "d1", group="other")
        first = await client.lease("cli", 30, count=10)
        assert [m.value for m in first] == ["c1", "d1"]
        acked: dict[str, str] = {}
        second = await client.lease("cli", 30, count=10, ack=first, acked=acked)
        assert set(acked.values()) == {"ok"}
        assert [m.value for m in second] == ["c2"]


async def test_roundrobin_stream_in_lease_mode_holds_the_group_until_acked(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        assert (await http.post("/p/rr", data={"policy": "roundrobin"})).status_code == 200
        async with sse(server, "rr", lease="30") as one, sse(server, "rr", lease="30") as two:
            await wait_stats(http, "rr", lambda s: s["consumers"] == 2, "two consumers")
            await add_grouped(http, "rr", "g", "g1", "g2", "g3")
            await add_grouped(http, "rr", "h", "h1")

            def streamed() -> list[Message]:
                return sorted(one.messages + two.messages, key=lambda m: int(m["key"].rsplit(":", 1)[1]))

            for done in range(3):
                # g's head and h1 are in flight; the rest of g waits parked until the head is acked
                await wait_stats(http, "rr", counts_are(leased=2, length=2 - done), "heads in flight")

                async def head_streamed(d: int = done) -> bool:
                    return [m["value"][0] for m in streamed()].count("g") == d + 1

                await wait_for(head_streamed, 10, 0.01, "the group's head to be streamed")
                values = [m["value"] for m in streamed()]
                assert [v for v in values if v.startswith("g")] == [f"g{i}" for i in range(1, done + 2)]
                await ack(http, "rr", next(m["key"] for m in streamed() if m["value"] == f"g{done + 1}"))
            await wait_stats(http, "rr", counts_are(leased=1, length=0), "only h1 in flight")


async def test_broadcast_stream_delivers_a_group_in_order(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http, sse(server, "bc") as reader:
        await add_grouped(http, "bc", "g", "g1", "g2", "g3")
        await add(http, "bc", "plain")

        async def all_streamed() -> bool:
            return len(reader.messages) == 4

        await wait_for(all_streamed, 10, 0.01, "four streamed messages")
        assert [m["value"] for m in reader.messages] == ["g1", "g2", "g3", "plain"]
        assert (await stats(http, "bc"))["length"] == 0


async def test_groups_on_every_topology(topology: str) -> None:
    async with httpx.AsyncClient(base_url=topology, timeout=30) as http:
        queues = ["t1", "t2", "t3"]
        for queue in queues:
            for i in range(3):
                await add_grouped(http, queue, "g", f"{queue}-{i}")
                await add_grouped(http, queue, "h", f"{queue}-h{i}")
        for queue in queues:
            for i in range(3):
                got = await lease_all(http, queue, 30)
                assert [m["value"] for m in got] == [f"{queue}-{i}", f"{queue}-h{i}"]
                assert await lease_all(http, queue, 30) == []
                for m in got:
                    await ack(http, queue, m["key"])
            assert (await stats(http, queue))["length"] == 0


async def test_a_grouped_add_whose_reply_was_lost_is_added_once(redis_url: str, engine: EmbeddedEngine) -> None:
    """The retry after a lost reply replays it (operation ids): the group holds each message once, in order."""
    with lossy_link(engine.socket_path) as link:
        store = RedisStore.from_url(link.url)
        try:
            link.lose_next_reply_to(b"lossy")
            added = await store.add("lossy", ["1", "2"], group="g")
            assert link.lost == 1 and added.last == added.first + 1
            (current,) = await store.stats(["lossy"])
            assert current.length == 2
            taken = await store.pop("lossy", PopMode.TAKE, 10)
            assert [m.value for m in taken.messages] == ["1", "2"]
        finally:
            await store.close()


async def test_store_reports_parked_messages_as_waiting(store: RedisStore) -> None:
    await store.add("s", ["1", "2"], group="g")
    await store.add("s", ["plain"])
    (current,) = await store.stats(["s"])
    assert current.length == 3
    taken = await store.pop("s", PopMode.LEASE, 10, 30_000)
    assert [m.value for m in taken.messages] == ["1", "plain"]


# -- two server processes on one engine --------------------------------------------------------------


@pytest.fixture(scope="module")
def two_servers(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServeProcess]]:
    path = tmp_path_factory.mktemp("groups")
    with serve(["--redis", engine.url], path, "one") as one, serve(["--redis", engine.url], path, "two") as two:
        yield [one, two]


@pytest.fixture
async def clients(two_servers: list[ServeProcess], redis_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=two_servers[0].url, timeout=30) as one,
        httpx.AsyncClient(base_url=two_servers[1].url, timeout=30) as two,
    ):
        yield [one, two]


async def test_one_in_flight_per_group_across_two_servers(clients: list[httpx.AsyncClient]) -> None:
    groups = [f"g{i}" for i in range(4)]
    for i in range(5):
        for group in groups:
            await add(clients[i % 2], "shared", f"{group}-{i}", group=group)
    in_flight: dict[str, str] = {}
    seen: dict[str, list[int]] = {group: [] for group in groups}

    async def worker(http: httpx.AsyncClient) -> None:
        while sum(len(v) for v in seen.values()) < 20:
            reply = await http.get("/q/shared", params={"lease": 30, "wait": 0.5})
            if reply.status_code == 204:
                continue
            message = reply.json()
            group, index = message["value"].split("-")
            assert group not in in_flight, f"{group} delivered while {in_flight[group]} is in flight"
            in_flight[group] = message["key"]
            await asyncio.sleep(0.01)  # hold it: the other server's worker polls meanwhile
            seen[group].append(int(index))
            del in_flight[group]
            await ack(http, "shared", message["key"])

    await asyncio.wait_for(asyncio.gather(*(worker(http) for http in clients * 2)), 60)
    assert seen == {group: list(range(5)) for group in groups}


def test_cli_adds_to_a_group(two_servers: list[ServeProcess], redis_url: str, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "RESTMQ_URL": two_servers[0].url}
        return subprocess.run(
            [sys.executable, "-m", "restmq", *args], capture_output=True, text=True, env=env, timeout=60
        )

    assert cli("add", "clig", "one", "--group", "g").stdout == "clig:1\n"
    lines = tmp_path / "lines.txt"
    lines.write_text("two\nthree\n")
    assert cli("add", "clig", "--file", str(lines), "--group", "g", "-q").returncode == 0
    refused = cli("add", "clig", "x", "--group", "g", "--priority", "2")
    assert refused.returncode != 0 and "group" in refused.stderr
    reply = httpx.get(f"{two_servers[1].url}/q/clig", params={"lease": 30, "count": 10}, timeout=10)
    assert [m["value"] for m in reply.json()] == ["one"]
    assert httpx.get(f"{two_servers[1].url}/stats/clig", timeout=10).json()["length"] == 2
