"""Acks carried on the next lease (GET /q/<queue>?lease=S&ack=<key>): the acks and the lease in one request, each
ack's outcome in X-RestMQ-Ack, on one node and across a ring, with token rights."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from restmq.client import AsyncClient, BadRequestError
from restmq.core.model import PopMode, SettleOutcome
from restmq.errors import BackendUnavailable
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from restmq.storage.sharded import KEY_STRIDE, ShardedStore
from tests.helpers.auth import create_token_async
from tests.helpers.queues import add, lease, stats, wait_stats
from tests.helpers.server import run_app
from tests.helpers.topology import engines, flush_engines

pytestmark = pytest.mark.integration


async def test_one_request_acks_and_leases_the_next(http: httpx.AsyncClient) -> None:
    first, second = await add(http, "pair", "one"), await add(http, "pair", "two")
    assert (await lease(http, "pair", 30))["key"] == first

    reply = await http.get("/q/pair", params={"lease": 30, "ack": first})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"key": second, "value": "two", "count": 1}
    assert reply.headers["x-restmq-ack"] == f"{first}=ok"
    assert reply.headers["cache-control"] == "no-store"
    current = await stats(http, "pair")
    assert (current["length"], current["leased"], current["acked"]) == (0, 1, 1)
    assert (await http.delete(f"/q/pair/{first}")).status_code == 404  # gone for good


async def test_several_acks_with_count_and_an_empty_queue(http: httpx.AsyncClient) -> None:
    keys = [await add(http, "many", f"m{i}") for i in range(3)]
    leased = (await http.get("/q/many", params={"lease": 30, "count": 3})).json()
    assert [m["key"] for m in leased] == keys

    acks = httpx.QueryParams([("lease", "30"), ("count", "2"), *[("ack", k) for k in keys]])
    reply = await http.get("/q/many", params=acks)
    assert reply.status_code == 204  # nothing left to lease: the acks still ran, and say so
    assert reply.headers["x-restmq-ack"] == ", ".join(f"{k}=ok" for k in keys)
    current = await stats(http, "many")
    assert (current["length"], current["leased"], current["acked"]) == (0, 0, 3)


async def test_a_stale_ack_is_reported_and_leaves_the_message(http: httpx.AsyncClient) -> None:
    key = await add(http, "stale-ack", "job")
    assert (await lease(http, "stale-ack", 0.2))["count"] == 1
    await wait_stats(http, "stale-ack", lambda s: s["leased"] == 0 and s["length"] == 1, "the lease to expire")

    expired = await http.get("/q/stale-ack", params={"lease": 30, "ack": key})
    assert expired.headers["x-restmq-ack"] == f"{key}=LEASE_EXPIRED"
    assert expired.json() == {"key": key, "value": "job", "count": 2}  # the failed ack did not keep the lease

    stale = await http.get("/q/stale-ack", params={"lease": 30, "ack": f"{key}@1"})
    assert stale.status_code == 204
    assert stale.headers["x-restmq-ack"] == f"{key}@1=LEASE_STALE"
    assert (await stats(http, "stale-ack"))["leased"] == 1  # the second delivery is still out

    done = await http.get("/q/stale-ack", params={"lease": 30, "ack": f"{key}@2"})
    assert (done.status_code, done.headers["x-restmq-ack"]) == (204, f"{key}@2=ok")
    assert (await stats(http, "stale-ack"))["leased"] == 0


async def test_a_missing_key_is_reported_and_the_lease_runs(http: httpx.AsyncClient) -> None:
    key = await add(http, "gone", "job")
    reply = await http.get("/q/gone", params={"lease": 30, "ack": "gone:999"})
    assert reply.headers["x-restmq-ack"] == "gone:999=MESSAGE_NOT_FOUND"
    assert reply.json()["key"] == key
    plain = await http.get("/q/gone", params={"lease": 30})  # a plain lease GET answers as ever: no ack header
    assert plain.status_code == 204 and "x-restmq-ack" not in plain.headers


async def test_bad_acks_are_refused_before_anything_runs(http: httpx.AsyncClient) -> None:
    await add(http, "bad", "job")
    for params in ({"lease": "30", "ack": "other:1"}, {"lease": "30", "ack": "bad:x"}, {"ack": "bad:1"}):
        reply = await http.get("/q/bad", params=params)
        assert reply.status_code == 400, (params, reply.text)
    too_many = httpx.QueryParams([("lease", "30"), *[("ack", f"bad:{i}") for i in range(1, 1002)]])
    assert (await http.get("/q/bad", params=too_many)).status_code == 400
    assert (await stats(http, "bad"))["length"] == 1


async def test_the_ack_needs_the_right_of_a_delete(redis_url: str) -> None:
    reader = await create_token_async(redis_url, "tok", "read")
    writer = await create_token_async(redis_url, "tok", "write")
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as client:
        key = (await client.post("/q/tok", data={"value": "v"}, headers=_bearer(writer))).text.strip()
        got = await client.get("/q/tok", params={"lease": 30}, headers=_bearer(reader))
        assert got.json()["key"] == key
        denied = await client.get("/q/tok", params={"lease": 30, "ack": key}, headers=_bearer(writer))
        assert denied.status_code == 403
        anonymous = await client.get("/q/tok", params={"lease": 30, "ack": key})
        assert anonymous.status_code == 401
        acked = await client.get("/q/tok", params={"lease": 30, "ack": key}, headers=_bearer(reader))
        assert (acked.status_code, acked.headers["x-restmq-ack"]) == (204, f"{key}=ok")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_on_a_ring_an_ack_goes_to_the_node_its_number_names(ring_engines: list[EmbeddedEngine]) -> None:
    flush_engines(ring_engines)
    ring = ShardedStore([e.url for e in ring_engines])
    try:
        home_n = (await ring.add("spread", ["home"])).first
        home = home_n // KEY_STRIDE
        far = (home + 1) % len(ring_engines)
        # a message of the same queue written on another node (as a fallback write leaves it), and leased there
        other = RedisStore.from_url(ring_engines[far].url, key_base=far * KEY_STRIDE)
        try:
            far_n = (await other.add("spread", ["far"])).first
            assert (await other.pop("spread", PopMode.LEASE, 1, 30_000)).messages[0].n == far_n
            home_leased = (await ring.pop("spread", PopMode.LEASE, 1, 30_000)).messages[0].n
            assert home_leased == home_n
            await ring.add("spread", ["next"])

            result = await ring.ack_lease("spread", [(far_n, 1), (home_n, None), (far_n, None)], 1, 30_000)
            outcomes = [r.outcome for r in result.acked]
            assert outcomes == [SettleOutcome.OK, SettleOutcome.OK, SettleOutcome.MISSING]
            assert [m.value for m in result.messages] == ["next"]
            assert (await other.stats(["spread"]))[0].leased == 0
        finally:
            await other.close()
    finally:
        await ring.close()


async def test_a_long_poll_applies_the_acks_before_it_waits(http: httpx.AsyncClient) -> None:
    key = await add(http, "poll", "job")
    assert (await lease(http, "poll", 30))["key"] == key

    async def later() -> str:
        await wait_stats(http, "poll", lambda s: s["acked"] == 1, "the ack, while the lease waits")
        return await add(http, "poll", "next")

    waiting = asyncio.create_task(http.get("/q/poll", params={"lease": 30, "ack": key, "wait": 10}))
    added = await later()
    reply = await waiting
    assert reply.json()["key"] == added and reply.headers["x-restmq-ack"] == f"{key}=ok"


@pytest.mark.parametrize("topology", ["node", "ring", "cluster"], indirect=True)
async def test_every_topology(topology: str) -> None:
    async with httpx.AsyncClient(base_url=topology, timeout=30) as http:
        keys = [await add(http, "topo", f"m{i}") for i in range(3)]
        held = (await lease(http, "topo", 30))["key"]
        reply = await http.get("/q/topo", params={"lease": 30, "ack": [held, "topo:999"], "count": 5})
        assert reply.headers["x-restmq-ack"] == f"{held}=ok, topo:999=MESSAGE_NOT_FOUND"
        assert sorted(m["key"] for m in reply.json()) == sorted(keys[1:])


class Recorder(httpx.AsyncBaseTransport):
    """The real transport, remembering each request's method and query."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.query.decode()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_worker_acks_on_its_next_lease(server: str, http: httpx.AsyncClient) -> None:
    values = [f"job{i}" for i in range(5)]
    for value in values:
        await add(http, "piggy", value)
    handled: list[str] = []
    recorder = Recorder()
    async with AsyncClient(server, transport=recorder) as client:
        done = await client.consume("piggy", lambda m: handled.append(m.value), max_messages=5, wait=0.2)
    assert handled == values and (done.handled, done.failed, done.errors) == (5, 0, 0)
    leases = [query for method, query in recorder.sent if method == "GET"]
    assert sum("ack=" in query for query in leases) == 4  # each handled message acked on the next lease
    assert [method for method, _ in recorder.sent].count("DELETE") == 1  # the last one, as the worker stops
    current = await stats(http, "piggy")
    assert (current["length"], current["leased"], current["acked"]) == (0, 0, 5)


async def test_the_client_reports_each_ack(server: str) -> None:
    async with AsyncClient(server) as client:
        await client.add_batch("told", ["a", "b"])
        first = await client.lease("told", 30)
        assert first is not None
        outcomes: dict[str, str] = {}
        second = await client.lease("told", 30, ack=[first, "told:99"], acked=outcomes)
        assert second is not None and second.value == "b"
        assert outcomes == {first.key: "ok", "told:99": "MESSAGE_NOT_FOUND"}
        outcomes.clear()
        assert await client.lease("told", 30, count=2, ack=[first], acked=outcomes) == []
        assert outcomes == {first.key: "MESSAGE_NOT_FOUND"}
        with pytest.raises(BadRequestError):
            await client.lease("told", 30, ack=["other:1"])


async def test_on_a_ring_a_down_home_keeps_neither_acks_elsewhere_nor_its_own_error(tmp_path: Path) -> None:
    with engines(tmp_path / "ring", 3) as nodes:
        ring = ShardedStore([e.url for e in nodes])
        try:
            home_n = (await ring.add("down", ["home"])).first
            home = home_n // KEY_STRIDE
            far = (home + 1) % len(nodes)
            other = RedisStore.from_url(nodes[far].url, key_base=far * KEY_STRIDE)
            try:
                far_n = (await other.add("down", ["far"])).first
                await other.pop("down", PopMode.LEASE, 1, 30_000)
                home_leased = (await ring.pop("down", PopMode.LEASE, 1, 30_000)).messages[0].n
                nodes[home].stop()

                result = await ring.ack_lease("down", [(far_n, 1)], 1, 30_000)  # the home node is down
                assert [r.outcome for r in result.acked] == [SettleOutcome.OK] and result.messages == []
                assert (await other.stats(["down"]))[0].leased == 0
                with pytest.raises(BackendUnavailable):  # as a DELETE of a message on a down node answers
                    await ring.ack_lease("down", [(home_leased, 1)], 1, 30_000)
            finally:
                await other.close()
        finally:
            await ring.close()
