"""Schedules over HTTP (issue 19): one message per tick whatever the number of server processes, on one node, a
ring and a Redis Cluster; pause, resume, delete; rights; hostile input. Each message carries its tick
(`{{tick_ms}}`), so a duplicate would show."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from restmq.config import Settings
from restmq.core.tokens import new_token
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from restmq.web.app import create_app
from tests.helpers.auth import bearer
from tests.helpers.cluster import Cluster
from tests.helpers.server import run_app, serve_app
from tests.helpers.topology import engine_client, flush_engines
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration

TICK_TEMPLATE = "{{tick_ms}}"


@pytest.fixture(params=["node", "ring", "cluster"])
async def two_servers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    """Two RestMQ servers (each its own store, runner and event subscription) on one flushed backend."""
    from tests.helpers.topology import flush_cluster

    backend: dict[str, Any]
    if request.param == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        backend = {"redis_url": engine.url}
    elif request.param == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        backend = {"redis_urls": [e.url for e in ring]}
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        backend = {"redis_cluster": cluster.url}
    async with run_app(**backend) as first, run_app(**backend) as second:
        yield first, second


async def messages(http: httpx.AsyncClient, queue: str) -> list[dict[str, Any]]:
    taken: list[dict[str, Any]] = []
    while True:
        reply = await http.get(f"/q/{queue}?count=1000")
        if reply.status_code == 204:
            return taken
        taken += reply.json()


async def published_here(http: httpx.AsyncClient) -> int:
    """The server process's `restmq_process_schedule_ticks_total`, from /metrics."""
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("restmq_process_schedule_ticks_total "):
            return int(float(line.split()[1]))
    raise AssertionError("/metrics has no restmq_process_schedule_ticks_total")


async def schedule_of(http: httpx.AsyncClient, schedule_id: str) -> dict[str, Any]:
    reply = await http.get(f"/schedules/{schedule_id}")
    assert reply.status_code == 200, reply.text
    shown: dict[str, Any] = reply.json()
    return shown


async def fired_at_least(http: httpx.AsyncClient, schedule_id: str, n: int, timeout: float = 30.0) -> dict[str, Any]:
    async def enough() -> dict[str, Any]:
        shown = await schedule_of(http, schedule_id)
        return shown if shown["fired"] >= n else {}

    return await wait_for(enough, timeout, 0.05, f"{n} ticks of {schedule_id}")


async def test_each_tick_is_published_once_by_two_servers(two_servers: tuple[str, str]) -> None:
    """Both servers' runners wake for every tick; the engine's claim lets one of them publish it."""
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first, timeout=30) as one, httpx.AsyncClient(base_url=second) as two:
        created = await one.post("/schedules", json={"queue": "ticks", "value": TICK_TEMPLATE, "every": 1})
        assert created.status_code == 201, created.text
        schedule = created.json()
        await fired_at_least(two, schedule["id"], 4)
        paused = await two.post(f"/schedules/{schedule['id']}/pause")
        assert paused.json()["paused"] is True
        final = await schedule_of(one, schedule["id"])
        ticks = [int(m["value"]) for m in await messages(one, "ticks")]
        by_process = [await published_here(one), await published_here(two)]
    assert sum(by_process) == final["fired"], by_process  # each tick claimed by exactly one of them
    assert len(ticks) == final["fired"] >= 4
    assert len(set(ticks)) == len(ticks), f"a tick was published twice: {sorted(ticks)}"
    assert all((t - schedule["created_ms"]) % 1000 == 0 and t > schedule["created_ms"] for t in ticks)
    assert ticks == sorted(ticks)
    assert final["last_tick_ms"] == ticks[-1]


async def test_pause_resume_and_delete(http: httpx.AsyncClient, redis_client: redis.Redis) -> None:
    created = (await http.post("/schedules", json={"queue": "pr", "value": TICK_TEMPLATE, "every": 1})).json()
    sid = created["id"]
    await fired_at_least(http, sid, 1)
    paused = (await http.post(f"/schedules/{sid}/pause")).json()
    assert paused["paused"] is True and paused["next_tick_ms"] is None
    held = paused["fired"]
    await _engine_passes(redis_client, paused["last_tick_ms"] + 2500)
    assert (await schedule_of(http, sid))["fired"] == held  # no tick while paused

    resumed = (await http.post(f"/schedules/{sid}/resume")).json()
    assert resumed["paused"] is False
    assert resumed["last_tick_ms"] == paused["last_tick_ms"]  # the last tick published, not the resume time
    resumed_at = _engine_ms(redis_client)
    await fired_at_least(http, sid, held + 1)
    ticks = [int(m["value"]) for m in await messages(http, "pr")]
    after = [t for t in ticks if t > paused["last_tick_ms"]]
    assert after and all(t >= resumed_at - 1000 for t in after)  # the ticks that fell while paused stayed unpublished

    assert (await http.delete(f"/schedules/{sid}")).json() == {"id": sid, "deleted": True}
    assert (await http.get(f"/schedules/{sid}")).status_code == 404
    assert (await http.delete(f"/schedules/{sid}")).json()["code"] == "SCHEDULE_NOT_FOUND"
    assert (await http.get("/schedules")).json() == {"schedules": [], "count": 0}
    gone_at = _engine_ms(redis_client)
    await _engine_passes(redis_client, gone_at + 2500)
    assert all(int(m["value"]) <= gone_at for m in await messages(http, "pr"))
    assert redis_client.keys("rmq:*sched*") == []  # the schedule's hash and index entry are gone


def _engine_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _engine_passes(client: redis.Redis, when_ms: int) -> None:
    async def passed() -> bool:
        return _engine_ms(client) >= when_ms

    await wait_for(passed, 30, 0.05, f"the engine clock to pass {when_ms}")


BAD = [
    ({"queue": "a b", "value": "x", "every": 5}, "QUEUE_NAME_INVALID"),
    ({"queue": "q" * 201, "value": "x", "every": 5}, "QUEUE_NAME_INVALID"),
    ({"queue": "q", "value": "x", "every": 0}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": 0.5}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": True}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": 10**12}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": "5"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": 5, "cron": "* * * * *"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "* * *"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "* * * * * *"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "61 * * * *"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "0 0 30 2 *"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "x" * 10_000}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "* * * * *", "tz": "Mars/Olympus_Mons"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "cron": "* * * * *", "tz": "../../etc/passwd"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": "x", "every": 5, "tz": "Europe/Paris"}, "PARAMETER_INVALID"),
    ({"queue": "q", "value": 5, "every": 5}, "VALUE_INVALID"),
    ({"queue": "q", "every": 5}, "FIELD_MISSING"),
    ({"queue": "q", "value": "x", "every": 5, "url": "http://x"}, "PARAMETER_INVALID"),
    ([1, 2], "VALUE_INVALID"),
    ("text", "VALUE_INVALID"),
]


@pytest.mark.parametrize(("body", "code"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
async def test_bad_schedules_get_a_clear_400(http: httpx.AsyncClient, body: object, code: str) -> None:
    reply = await http.post("/schedules", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == code
    assert (await http.get("/schedules")).json()["count"] == 0


async def test_bad_bodies_ids_and_sizes(http: httpx.AsyncClient) -> None:
    assert (await http.post("/schedules", content=b"{not json")).json()["code"] == "JSON_INVALID"
    assert (await http.post("/schedules", content=b'{"queue": "\xff"}')).json()["code"] == "VALUE_INVALID"
    huge = await http.post("/schedules", json={"queue": "q", "value": "v" * (1024 * 1024 + 1), "every": 5})
    assert huge.status_code == 413, huge.text
    for path in ("/schedules/nope", "/schedules/s_0123456789abcdef", "/schedules/s_0123456789abcdef/pause"):
        method = "POST" if path.endswith("pause") else "GET"
        reply = await http.request(method, path)
        assert reply.status_code == 404 and reply.json()["code"] == "SCHEDULE_NOT_FOUND"
    assert (await http.get("/health")).status_code == 200


async def test_schedules_are_capped(redis_url: str) -> None:
    app = create_app(Settings(redis=(redis_url,)))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as http:
        app.state.schedules.cap = 3
        for i in range(3):
            assert (
                await http.post("/schedules", json={"queue": f"c{i}", "value": "x", "every": 60})
            ).status_code == 201
        full = await http.post("/schedules", json={"queue": "c9", "value": "x", "every": 60})
        assert full.status_code == 400 and full.json()["code"] == "SCHEDULES_FULL"
        assert (await http.get("/schedules")).json()["count"] == 3


@contextlib.asynccontextmanager
async def tokens(redis_url: str, *grants: tuple[tuple[str, ...], tuple[str, ...]]) -> AsyncIterator[list[str]]:
    store = RedisStore.from_url(redis_url)
    shown = []
    try:
        for queues, rights in grants:
            token, record = new_token(queues, rights)
            await store.save_token(record.id, record.to_json())
            shown.append(token)
        yield shown
    finally:
        await store.close()


async def test_rights_follow_the_queue(redis_url: str) -> None:
    """Admin on the queue manages its schedules; read on it lists them; other tokens see nothing of them."""
    grants = ((("jobs*",), ("admin",)), (("jobs*",), ("read",)), (("other",), ("admin",)))
    async with tokens(redis_url, *grants) as (admin, reader, stranger), run_app(redis_url, auth="tokens") as url:
        async with httpx.AsyncClient(base_url=url) as http:
            body = {"queue": "jobs.daily", "value": "x", "cron": "0 3 * * *", "tz": "Europe/Paris"}
            assert (await http.post("/schedules", json=body)).status_code == 401
            assert (await http.post("/schedules", json=body, headers=bearer(reader))).status_code == 403
            assert (await http.post("/schedules", json=body, headers=bearer(stranger))).status_code == 403
            created = await http.post("/schedules", json=body, headers=bearer(admin))
            assert created.status_code == 201, created.text
            sid = created.json()["id"]

            assert (await http.get("/schedules", headers=bearer(reader))).json()["count"] == 1
            assert (await http.get(f"/schedules/{sid}", headers=bearer(reader))).status_code == 200
            assert (await http.get("/schedules", headers=bearer(stranger))).json()["count"] == 0
            assert (await http.get(f"/schedules/{sid}", headers=bearer(stranger))).status_code == 404
            assert (await http.delete(f"/schedules/{sid}", headers=bearer(stranger))).status_code == 404
            assert (await http.post(f"/schedules/{sid}/pause", headers=bearer(reader))).status_code == 403
            assert (await http.delete(f"/schedules/{sid}", headers=bearer(admin))).status_code == 200


async def test_cron_next_tick_reads_the_time_zone(http: httpx.AsyncClient) -> None:
    """09:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer (croniter follows the zone's DST rules)."""
    body = {"queue": "tz", "value": "x", "cron": "0 9 * * *", "tz": "America/New_York"}
    shown = (await http.post("/schedules", json=body)).json()
    local = datetime.fromtimestamp(shown["next_tick_ms"] / 1000, ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (9, 0)
    utc = datetime.fromtimestamp(shown["next_tick_ms"] / 1000, UTC)
    assert utc.hour == (14 if local.dst() == timedelta(0) else 13)
    assert shown["next_tick_ms"] > shown["created_ms"] and shown["last_tick_ms"] is None


async def test_every_runner_learns_a_change_at_once(redis_url: str) -> None:
    """A create, pause or delete through one server reaches the other's runner by the pub/sub event, not by its
    periodic reload (30 s): each runner's view is checked within a few seconds."""
    apps = [create_app(Settings(redis=(redis_url,))) for _ in range(2)]
    async with serve_app(apps[0]) as first, serve_app(apps[1]):

        def known(app: Any) -> dict[str, bool]:
            return {s.id: s.paused for s in app.state.schedule_runner._schedules}

        async with httpx.AsyncClient(base_url=first) as http:
            sid = (await http.post("/schedules", json={"queue": "ev", "value": "x", "cron": "0 0 1 1 *"})).json()["id"]

            async def everyone_sees(state: bool | None) -> bool:
                return all(known(app).get(sid) == state for app in apps)

            await wait_for(lambda: everyone_sees(False), 5, 0.02, "both runners to load the new schedule")
            await http.post(f"/schedules/{sid}/pause")
            await wait_for(lambda: everyone_sees(True), 5, 0.02, "both runners to see the pause")
            await http.delete(f"/schedules/{sid}")
            await wait_for(lambda: everyone_sees(None), 5, 0.02, "both runners to drop it")


async def test_on_a_ring_a_schedule_lives_on_its_queue_node(ring_engines: list[EmbeddedEngine]) -> None:
    flush_engines(ring_engines)
    async with run_app(redis_urls=[e.url for e in ring_engines]) as url, httpx.AsyncClient(base_url=url) as http:
        placed = {}
        for queue in ("alpha", "beta", "gamma", "delta"):
            sid = (await http.post("/schedules", json={"queue": queue, "value": "x", "every": 1})).json()["id"]
            placed[queue] = sid
        for sid in placed.values():
            await fired_at_least(http, sid, 1)
        assert (await http.get("/schedules")).json()["count"] == 4
    for queue, sid in placed.items():
        holders = []
        for engine in ring_engines:
            client = engine_client(engine)
            if client.exists(f"rmq:{{{queue}}}:sched:{sid}"):
                holders.append(engine)
                assert client.zcard(f"rmq:{{{queue}}}:ready") >= 1  # its ticks are queued on the same node
                assert client.hget("rmq:schedules", sid) == queue  # and in that node's index
            client.close()
        assert len(holders) == 1, f"{queue}'s schedule on {len(holders)} nodes"
