"""Push targets (issue 19): the SSRF rules of --push-allow checked on resolved addresses, and delivery on every
backend topology (one node, a ring, a Redis Cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.cluster import Cluster
from tests.helpers.receiver import Receiver, receiver
from tests.helpers.server import run_app
from tests.helpers.topology import TOPOLOGIES, flush_cluster, flush_engines
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def target() -> Iterator[Receiver]:
    with receiver() as found:
        yield found


async def _failing_with(http: httpx.AsyncClient, queue: str, text: str) -> dict[str, Any]:
    async def failed() -> dict[str, Any] | None:
        sub: dict[str, Any] = (await http.get(f"/push/{queue}")).json()
        return sub if sub["failing"] >= 1 else None

    found = await wait_for(failed, 15, what="a failed attempt")
    assert found is not None and text in found["last_error"], found
    return found


async def test_a_name_resolving_to_loopback_is_refused_unless_its_address_is_allowed(
    redis_url: str, target: Receiver
) -> None:
    port = target.url.rsplit(":", 1)[1]
    async with run_app(redis_url, push_allow=("http://localhost",)) as url, httpx.AsyncClient(base_url=url) as http:
        # the name is allowed, but it resolves to loopback, which no address rule names
        reply = await http.post("/push/q", json={"url": f"http://localhost:{port}/ok", "backoff": {"base": 0.05}})
        assert reply.status_code == 200
        await http.post("/q/q", data={"value": "v"})
        await _failing_with(http, "q", "which --push-allow does not allow")
        assert target.count() == 0
        stats = (await http.get("/stats/q")).json()
        assert stats["length"] + stats["delayed"] + stats["leased"] == 1  # kept for a retry, not lost
        # an address literal needs an address rule; another scheme than the rule's is refused
        for refused in (f"http://127.0.0.1:{port}/ok", f"https://localhost:{port}/ok", "http://[::1]/"):
            reply = await http.post("/push/r", json={"url": refused})
            assert reply.json()["code"] == "PUSH_TARGET_NOT_ALLOWED", refused
    async with run_app(redis_url, push_allow=("http://localhost", "127.0.0.1", "::1")) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            await http.post("/push/q", json={"url": f"http://localhost:{port}/ok"})  # resume with the same target
            await target.wait_count(1)
            assert target.deliveries[0].headers["host"] == f"localhost:{port}"  # connected to the address, named


async def test_loopback_is_refused_when_only_other_targets_are_allowed(redis_url: str, target: Receiver) -> None:
    async with run_app(redis_url, push_allow=("10.0.0.0/8", "hooks.example.com")) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for refused in (target.url + "/ok", "http://localhost/", "http://169.254.169.254/latest/meta-data"):
                reply = await http.post("/push/q", json={"url": refused})
                assert reply.json()["code"] == "PUSH_TARGET_NOT_ALLOWED", refused
            assert (await http.post("/push/q", json={"url": "https://hooks.example.com/in"})).status_code == 200


@pytest.mark.parametrize("kind", TOPOLOGIES)
async def test_push_on_every_topology(request: pytest.FixtureRequest, kind: str, target: Receiver) -> None:
    if kind == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        app = run_app(engine.url, push_allow=("127.0.0.1",))
    elif kind == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        app = run_app(redis_urls=[e.url for e in ring], push_allow=("127.0.0.1",))
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        app = run_app(redis_cluster=cluster.url, push_allow=("127.0.0.1",))
    queues = [f"q{i}" for i in range(6)]  # spread over the ring's nodes and the cluster's slots
    async with app as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        for queue in queues:
            ok = await http.post(f"/push/{queue}", json={"url": target.url + "/ok"})
            assert ok.status_code == 200, ok.text
            await http.post(f"/q/{queue}", json=["a", "b"])
        await target.wait_count(12)
        listed = (await http.get("/push/")).json()["subscriptions"]
        assert [s["queue"] for s in listed] == queues
        await http.post("/push/q0", json={"url": target.url + "/fail", "max_attempts": 1})
        await http.post("/q/q0", data={"value": "dead"})

        async def dead() -> bool:
            reply = await http.get("/q/q0:dead")
            return reply.status_code == 200 and reply.json()["value"] == "dead"

        await wait_for(dead, 15, what="the dead letter")
        for queue in queues:
            assert (await http.delete(f"/push/{queue}")).json()["removed"]
        assert (await http.get("/push/")).json()["subscriptions"] == []
