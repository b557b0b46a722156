"""Schedules across restarts (issue 19): two `restmq serve` processes publish each tick once, a tick missed while
every server was down is published once on start (not every missed tick), and a cron schedule's tick is read in
its time zone. The ticks are the engine's: the tests read its clock instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from restmq.core.schedules import Schedule
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from tests.helpers.server import ServeProcess, free_port, run_app
from tests.helpers.topology import restart
from tests.helpers.wait import wait_for, wait_until

pytestmark = pytest.mark.integration


def engine_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


@contextlib.contextmanager
def two_serve_processes(redis_url: str, tmp_path: Path, round_: int) -> Iterator[list[ServeProcess]]:
    started = [ServeProcess(["--redis", redis_url], free_port(), tmp_path / f"serve{round_}-{i}.log") for i in range(2)]
    try:
        yield [process.wait_ready() for process in started]
    finally:
        for process in started:
            process.stop()


def shown(url: str, schedule_id: str) -> dict[str, Any]:
    reply = httpx.get(f"{url}/schedules/{schedule_id}", timeout=10)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def fired_at_least(url: str, schedule_id: str, n: int) -> None:
    wait_until(lambda: shown(url, schedule_id)["fired"] >= n, 40, 0.05, f"{n} ticks of {schedule_id}")


def ticks_of(url: str, queue: str) -> list[int]:
    taken: list[int] = []
    while (reply := httpx.get(f"{url}/q/{queue}?count=1000", timeout=10)).status_code == 200:
        taken += [int(m["value"]) for m in reply.json()]
    return taken


def test_two_processes_publish_each_tick_once_and_catch_up_once_after_a_full_stop(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    every = 1000
    with two_serve_processes(redis_url, tmp_path, 1) as (one, two):
        body = {"queue": "beat", "value": "{{tick_ms}}", "every": every // 1000}
        created = httpx.post(f"{one.url}/schedules", json=body, timeout=10).json()
        sid, origin = created["id"], created["created_ms"]
        fired_at_least(two.url, sid, 3)
    stopped = _stored_state(redis_client, "beat", sid)
    # every server is down: let at least four ticks fall
    down_until = engine_ms(redis_client) + 4 * every
    wait_until(lambda: engine_ms(redis_client) >= down_until, 30, 0.05, "four ticks to pass with no server")
    with two_serve_processes(redis_url, tmp_path, 2) as (one, two):
        fired_at_least(one.url, sid, stopped["fired"] + 3)
        assert httpx.post(f"{two.url}/schedules/{sid}/pause", timeout=10).status_code == 200
        final = shown(one.url, sid)
        ticks = ticks_of(one.url, "beat")

    assert len(ticks) == final["fired"], "one message per published tick"
    assert len(set(ticks)) == len(ticks), f"a tick was published twice: {ticks}"
    assert all(t > origin and (t - origin) % every == 0 for t in ticks)
    before = [t for t in ticks if t <= int(stopped["last"])]
    after = [t for t in ticks if t > int(stopped["last"])]
    assert len(before) == stopped["fired"]
    # the first tick after the restart is the latest one due when a runner started: the ticks missed before it
    # were not published (catch up once)
    assert after[0] >= down_until - every, (after[0], down_until)


def _stored_state(client: redis.Redis, queue: str, schedule_id: str) -> dict[str, Any]:
    state: dict[str, str] = client.hgetall(f"rmq:{{{queue}}}:sched:{schedule_id}")  # type: ignore[assignment]
    return {**state, "fired": int(state["fired"])}


async def test_a_cron_tick_due_in_its_time_zone_is_published_once_on_start(
    store: RedisStore, redis_client: redis.Redis, redis_url: str
) -> None:
    """A daily cron at the minute just past in Kolkata (UTC+05:30), stored as if created 10 minutes ago with no
    server running since: the server's runner publishes that one tick on start, at that minute's UTC time."""
    zone = ZoneInfo("Asia/Kolkata")
    now = engine_ms(redis_client)
    due = datetime.fromtimestamp(now / 1000, zone).replace(second=0, microsecond=0) - timedelta(minutes=1)
    schedule = Schedule(
        "s_00000000000000c1", "daily", "{{tick_ms}} {{tick}}", f"{due.minute} {due.hour} * * *", None,
        "Asia/Kolkata", now - 600_000,
    )  # fmt: skip
    definition = schedule.definition()
    assert await store.schedules.create(schedule.id, "daily", definition, schedule.value, schedule.created_ms, 10)
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url) as http:

        async def published() -> bool:  # async: this test's event loop runs the server
            return int(redis_client.hget(f"rmq:{{daily}}:sched:{schedule.id}", "fired") or 0) >= 1

        await wait_for(published, 30, 0.05, "the cron tick")
        reply = await http.get("/q/daily?count=10")
        assert reply.status_code == 200
        values = [m["value"] for m in reply.json()]
        shown_now = (await http.get(f"/schedules/{schedule.id}")).json()
    tick_ms = round(due.timestamp() * 1000)
    expected_text = due.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:00.000Z")
    assert values == [f"{tick_ms} {expected_text}"]
    assert shown_now["fired"] == 1 and shown_now["last_tick_ms"] == tick_ms
    assert shown_now["next_tick_ms"] == tick_ms + 86_400_000  # Kolkata has no DST: the same minute tomorrow


async def test_the_runner_outlives_an_engine_restart(own_engine: EmbeddedEngine) -> None:
    """The engine goes away under a running server: the runner logs, retries, and publishes again once it is back;
    the schedule (in the engine's AOF) is still there, and no tick was published twice."""
    async with run_app(own_engine.url) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        sid = (await http.post("/schedules", json={"queue": "survive", "value": "{{tick_ms}}", "every": 1})).json()[
            "id"
        ]

        async def fired() -> int:
            reply = await http.get(f"/schedules/{sid}")
            return int(reply.json()["fired"]) if reply.status_code == 200 else 0

        await wait_for(fired, 20, 0.05, "a first tick")
        await asyncio.to_thread(own_engine.stop)
        assert (await http.get(f"/schedules/{sid}")).status_code == 503
        await asyncio.to_thread(restart, own_engine)
        before = await wait_for(fired, 20, 0.05, "the schedule to answer again")

        async def more() -> bool:
            return await fired() >= before + 2

        await wait_for(more, 30, 0.05, "ticks after the engine came back")
        await http.post(f"/schedules/{sid}/pause")
        ticks = []
        while (reply := await http.get("/q/survive?count=1000")).status_code == 200:
            ticks += [int(m["value"]) for m in reply.json()]
    assert len(ticks) == len(set(ticks)) >= before + 2


def test_a_killed_process_leaves_the_ticks_to_the_other(redis_url: str, tmp_path: Path) -> None:
    """`kill -9` of one of two processes: the survivor publishes the following ticks, still one message each."""
    with two_serve_processes(redis_url, tmp_path, 3) as (one, two):
        body = {"queue": "solo", "value": "{{tick_ms}}", "every": 1}
        sid = httpx.post(f"{one.url}/schedules", json=body, timeout=10).json()["id"]
        fired_at_least(two.url, sid, 2)
        one.kill()
        before = shown(two.url, sid)["fired"]
        fired_at_least(two.url, sid, before + 3)
        httpx.post(f"{two.url}/schedules/{sid}/pause", timeout=10)
        final = shown(two.url, sid)
        ticks = ticks_of(two.url, "solo")
    assert len(ticks) == len(set(ticks)) == final["fired"]
