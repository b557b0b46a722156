"""Capacity-aware placement on the ring (issue 20, docs/scaling.md) against real servers and engines: a nearly
full node stops taking new queues, every server process places every queue alike (a restart too), `restmq ring
drain` under traffic loses and duplicates nothing, a server with another node list refuses the table."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from restmq.storage.placement import FLOOR
from tests.helpers.auth import bearer, create_token_async
from tests.helpers.queues import add, drain
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.topology import engine_client, engines, registered_queues
from tests.helpers.wait import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL = "0.5"  # seconds between recomputations: small, so a test sees a change within a few seconds


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[EmbeddedEngine]]:
    with engines(tmp_path / "ring", 3) as started:
        yield started


def capacity_args(ring: Sequence[EmbeddedEngine]) -> list[str]:
    return [arg for e in ring for arg in ("--redis", e.url)] + [
        "--ring-placement", "capacity", "--ring-placement-interval", INTERVAL,
    ]  # fmt: skip


async def view(http: httpx.AsyncClient, base: str = "") -> dict[str, Any]:
    reply = await http.get(f"{base}/admin/ring")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def owners(http: httpx.AsyncClient, base: str, queues: Sequence[str]) -> tuple[int | None, dict[str, int]]:
    reply = await http.get(f"{base}/admin/ring", params=[("queue", q) for q in queues])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["placement_version"], body["owners"]


async def same_owners(http: httpx.AsyncClient, bases: Sequence[str], queues: Sequence[str]) -> dict[str, int]:
    """The owners every server reports, once they report them at the same placement version."""

    async def agreed() -> dict[str, int] | None:
        answers = [await owners(http, base, queues) for base in bases]
        if len({version for version, _ in answers}) != 1 or answers[0][0] is None:
            return None  # one server has not followed the newest table yet
        assert all(found == answers[0][1] for _, found in answers), answers
        return answers[0][1]

    found = await wait_for(agreed, 20, 0.1, "every server at the same placement version")
    assert found is not None  # wait_for returns a truthy value
    return found


def squeeze(engine: EmbeddedEngine) -> None:
    """Fill the node (4 MiB of filler) and set its maxmemory so that 8 % stays free: nearly full, still writable."""
    client = engine_client(engine)
    try:
        client.set("filler", "x" * (4 * 2**20))
        readings: list[int] = []

        def settled() -> bool:
            """Right after the SET, used_memory still counts the request's and the AOF's buffers (freed within a
            second or so): maxmemory follows used_memory until three readings in a row agree."""
            readings.append(int(client.info("memory")["used_memory"]))
            client.config_set("maxmemory", str(int(readings[-1] / 0.92)))
            last = readings[-3:]
            return len(last) == 3 and max(last) - min(last) < 0.01 * max(last)

        wait_until(settled, 20, 0.2, "node 2's memory use to settle")
    finally:
        client.close()


async def test_a_nearly_full_node_stops_taking_new_queues_and_every_server_agrees(
    tmp_path: Path, nodes: list[EmbeddedEngine]
) -> None:
    args = capacity_args(nodes)
    with serve(args, tmp_path, "a") as a:
        b = ServeProcess(args, free_port(), tmp_path / "b.log").wait_ready()
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                old = [f"old-{i:02}" for i in range(30)]
                for queue in old:
                    for j in range(3):
                        await add(http, queue, f"{queue}-{j}", base=a.url if j % 2 else b.url)
                before = await same_owners(http, [a.url, b.url], old)
                on_full = [q for q in old if before[q] == 2]
                assert on_full, before  # some old queues live on the node about to fill up

                squeeze(nodes[2])

                async def node2_at_floor() -> bool:
                    views = [await view(http, base) for base in (a.url, b.url)]
                    return all(v["nodes"][2]["weight"] == FLOOR for v in views)

                await wait_for(node2_at_floor, 20, 0.1, "node 2 at the floor weight on both servers")
                new = [f"new-{i:03}" for i in range(200)]
                placed = await same_owners(http, [a.url, b.url], new)
                assert sum(1 for q in new if placed[q] == 2) <= 6, collections.Counter(placed.values())  # ~1 % expected
                for i, queue in enumerate(new[:60]):
                    await add(http, queue, "v", base=a.url if i % 2 else b.url)
                assert set(new[:60]) & registered_queues(nodes[2]) == {q for q in new[:60] if placed[q] == 2}

                # the old queues of the full node keep working: one more message each, then all of them drain
                for queue in on_full:
                    await add(http, queue, f"{queue}-3", base=a.url)
                for queue in old:
                    values = [m["value"] for m in await drain(http, queue, 10, base=b.url)]
                    expected = [f"{queue}-{j}" for j in range(4 if queue in on_full else 3)]
                    assert sorted(values) == expected, (queue, values)

                # a restart of one server: every queue placed as the other places it
                b.stop()
                b = ServeProcess(args, free_port(), tmp_path / "b2.log").wait_ready()
                final = await same_owners(http, [a.url, b.url], old + new)
                assert {q: final[q] for q in new} == placed
        finally:
            b.stop()


def ring_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "restmq", "ring", "--url", url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def test_drain_under_traffic_delivers_everything_once(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    queues = [f"jobs-{i:02}" for i in range(24)]
    with serve(capacity_args(nodes), tmp_path, "drain") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            _, home = await owners(http, "", queues)
            assert any(n == 1 for n in home.values()), home
            added: collections.Counter[str] = collections.Counter()
            delivered: collections.Counter[str] = collections.Counter()
            stop = asyncio.Event()

            async def produce(worker: int) -> None:
                i = 0
                while not stop.is_set():
                    queue = queues[(worker * 7 + i) % len(queues)]
                    value = f"{worker}-{i}"
                    reply = await http.post(f"/q/{queue}", data={"value": value})
                    if reply.status_code == 200:  # acknowledged: it must be delivered exactly once
                        added[value] += 1
                    i += 1

            async def consume() -> None:
                while not stop.is_set():
                    for queue in queues:
                        reply = await http.get(f"/q/{queue}", params={"count": 20})
                        if reply.status_code == 200:
                            delivered.update(m["value"] for m in reply.json())

            tasks = [asyncio.create_task(produce(w)) for w in range(3)] + [asyncio.create_task(consume())]
            await wait_for(lambda: asyncio.sleep(0, len(added) > 300), 30, 0.05, "traffic before the drain")
            result = await asyncio.to_thread(ring_cli, server.url, "drain", "1")
            assert result.returncode == 0, result.stderr
            assert "drain" not in result.stderr
            assert " 0.000 " in result.stdout.splitlines()[3], result.stdout  # node 1's weight
            mark = len(added)
            await wait_for(lambda: asyncio.sleep(0, len(added) > mark + 300), 30, 0.05, "traffic after the drain")
            stop.set()
            await asyncio.gather(*tasks)

            fresh = [f"fresh-{i:03}" for i in range(300)]
            _, placed = await owners(http, "", fresh)
            assert 1 not in placed.values()
            _, now = await owners(http, "", queues)
            assert 1 not in now.values()
            for queue in queues:
                delivered.update(m["value"] for m in await drain(http, queue, 50))
            assert delivered == added  # nothing lost, nothing twice
            ring = await view(http)
            assert ring["nodes"][1]["weight"] == 0 and ring["nodes"][1]["override"] == 0
            assert ring["nodes"][1]["messages"] == 0  # every message it held was delivered

            unpinned = await asyncio.to_thread(ring_cli, server.url, "unpin", "1")
            assert unpinned.returncode == 0, unpinned.stderr
            assert (await view(http))["nodes"][1]["override"] is None
            assert "ring unpin of node 1" in server.log() and "ring drain of node 1" in server.log()


async def test_a_server_with_another_node_list_refuses_the_table(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    with serve(capacity_args(nodes), tmp_path, "three") as three:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await view(http, three.url))["version"] is not None
            other = capacity_args(nodes[:2])
            with serve(other, tmp_path, "two") as two:

                async def refused() -> dict[str, Any] | None:
                    ring = await view(http, two.url)
                    return ring if ring["conflict"] else None

                ring = await wait_for(refused, 20, 0.1, "the two-node server to refuse the table")
                assert ring is not None
                assert "another node list" in ring["conflict"] and ring["version"] is None
                assert [n["weight"] for n in ring["nodes"]] == [1.0, 1.0]  # its own static placement
                await add(http, "still-served", "v", base=two.url)
                assert [m["value"] for m in await drain(http, "still-served", base=two.url)] == ["v"]
                cli = await asyncio.to_thread(ring_cli, two.url)
                assert "CONFLICT" in cli.stdout, cli.stdout
                pin = await http.post(f"{two.url}/admin/ring/pin", params={"node": "0", "weight": "2"})
                assert pin.status_code == 409, pin.text
                assert "another node list" in two.log()
                assert (await view(http, three.url))["conflict"] is None  # the three-node server's table is intact

                # the list changed on purpose: `restmq ring reset` makes the two-node list's table the newest
                reset = await asyncio.to_thread(ring_cli, two.url, "reset")
                assert reset.returncode == 0, reset.stderr
                assert "CONFLICT" not in reset.stdout, reset.stdout

                async def three_refuses() -> bool:
                    return bool((await view(http, three.url))["conflict"])

                await wait_for(three_refuses, 20, 0.1, "the three-node server to refuse the reset table")
                assert (await view(http, two.url))["conflict"] is None


async def test_bad_override_requests_get_clear_errors(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    with serve(capacity_args(nodes), tmp_path, "bad") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for path, params, status in [
                ("/admin/ring/pin", {"node": "0", "weight": "abc"}, 400),
                ("/admin/ring/pin", {"node": "0", "weight": "nan"}, 400),
                ("/admin/ring/pin", {"node": "0", "weight": "-1"}, 400),
                ("/admin/ring/pin", {"node": "0"}, 400),
                ("/admin/ring/drain", {"node": "9"}, 404),
                ("/admin/ring/drain", {"node": "redis://:***@nope:6379/0"}, 404),
                ("/admin/ring/drain", {}, 400),
            ]:
                reply = await http.post(path, params=params)
                assert reply.status_code == status, (path, params, reply.text)
                assert reply.json()["code"], reply.text
            assert (await http.post("/admin/ring/explode", params={"node": "0"})).status_code == 404  # no such route
            first = nodes[0].url  # a node named by its URL, as `restmq ring` shows it
            assert (await http.post("/admin/ring/drain", params={"node": first})).status_code == 200
            assert (await http.post("/admin/ring/drain", params={"node": "1"})).status_code == 200
            last = await http.post("/admin/ring/drain", params={"node": "2"})
            assert last.status_code == 409 and "every ring node" in last.json()["error"]
            assert (await http.get("/admin/ring", params={"queue": "bad name!"})).status_code == 400
            assert (await http.get("/ready")).status_code == 200
            # the dashboard's ring panel: its script is served and the page has its place (shown to admins)
            assert 'id="ring"' in (await http.get("/ui")).text
            script = await http.get("/ui/static/ring.js")
            assert script.status_code == 200 and "/admin/ring" in script.text
    with serve([arg for e in nodes for arg in ("--redis", e.url)], tmp_path, "static") as static:
        reply = httpx.post(f"{static.url}/admin/ring/drain", params={"node": "0"})
        assert reply.status_code == 409 and "static" in reply.json()["error"]


async def test_only_admins_see_and_steer_the_ring(tmp_path: Path, nodes: list[EmbeddedEngine]) -> None:
    ring_urls = ",".join(e.url for e in nodes)
    admin = await create_token_async(ring_urls, "*", "admin,read,write")
    worker = await create_token_async(ring_urls, "orders.*", "read,write")
    with serve(capacity_args(nodes), tmp_path, "auth") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/admin/ring")).status_code == 401
            assert (await http.post("/admin/ring/drain", params={"node": "1"})).status_code == 401
            for call in (
                http.get("/admin/ring", headers=bearer(worker)),
                http.post("/admin/ring/drain", params={"node": "1"}, headers=bearer(worker)),
            ):
                assert (await call).status_code == 403
            shown = await http.get("/admin/ring", headers=bearer(admin))
            assert shown.status_code == 200 and [n["weight"] for n in shown.json()["nodes"]] == [1.0, 1.0, 1.0]
            cli = await asyncio.to_thread(ring_cli, server.url, "--token", admin, "pin", "0", "--weight", "2")
            assert cli.returncode == 0, cli.stderr
            refused = await asyncio.to_thread(ring_cli, server.url, "--token", worker, "drain", "1")
            assert refused.returncode == 1 and "(FORBIDDEN, HTTP 403)" in refused.stderr, refused.stderr
            assert admin not in server.log() and worker not in server.log()
