"""Issue 14, item 6: the queue registry (`rmq:names`) and the timer index (`rmq:timers`) cannot be left wrong.

Both are cross-slot indexes written after the queue's own script. A purge racing an add must never leave a
queue that holds messages out of the registry, and whatever a crash between a script and its index write
leaves missing, the reaper's background repair restores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
import redis

from restmq.storage import keys, scripts
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from restmq.storage.sharded import KEY_STRIDE
from tests.helpers.cluster import Cluster
from tests.helpers.server import ServeProcess, serve
from tests.helpers.topology import cluster_slot_owner, engine_client, flush_cluster, flush_engines
from tests.helpers.wait import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 1000
T = TypeVar("T")


@pytest.fixture
def server(engine: EmbeddedEngine, redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """A real `restmq serve --workers 2` on the session engine, flushed (`redis_url`): two processes race."""
    with serve(["--redis", engine.url, "--workers", "2"], tmp_path) as process:
        wait_until(lambda: "2 workers listening" in process.log(), 20, 0.05, "both workers to listen")
        yield process


async def listed(http: httpx.AsyncClient, queue: str) -> bool:
    reply = await http.get("/q/", params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    return queue in reply.json()["queues"]


async def held(http: httpx.AsyncClient, queue: str) -> int:
    reply = await http.get(f"/stats/{queue}")
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    return int(stats["length"]) + int(stats["delayed"]) + int(stats["leased"])


async def test_a_purge_racing_adds_never_unlists_a_queue_that_holds_messages(server: ServeProcess) -> None:
    queue = "racy"
    unlisted_rounds = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for round_ in range(ROUNDS):
            replies = await asyncio.gather(
                http.post(f"/q/{queue}", data={"value": f"a{round_}"}),
                http.delete(f"/q/{queue}"),
                http.post(f"/q/{queue}", data={"value": f"b{round_}"}),
            )
            assert [r.status_code for r in replies] == [200, 200, 200], [r.text for r in replies]
            if await held(http, queue) and not await listed(http, queue):
                unlisted_rounds.append(round_)
                await http.delete(f"/q/{queue}")  # start the next round from a listed-or-empty queue
    assert unlisted_rounds == [], f"{len(unlisted_rounds)} of {ROUNDS} rounds left the queue holding messages unlisted"


# -- a crash between a script and its index write ---------------------------------------------------------------


class Backends:
    """Direct access to the engines behind a server, to break its indexes as a crash would."""

    def __init__(self, clients: list[Any], serve_args: list[str]) -> None:
        self.clients = clients  # every registry (one per ring node; a cluster client routes by key)
        self.serve_args = serve_args

    def forget(self, queue: str) -> None:
        """The registry and timer entries of `queue` gone: a process died before writing them."""
        for client in self.clients:
            client.zrem(keys.QUEUES, queue)
            client.zrem(keys.TIMERS, queue)

    def add_script_alone(self, i: int, queue: str, value: str, delay_ms: int) -> None:
        """add.lua run without the index writes that follow it (on ring node i, for a ring)."""
        client = self.clients[i % len(self.clients)]
        key_base = (i % len(self.clients)) * KEY_STRIDE if len(self.clients) > 1 else 0
        qk = keys.queue_keys(queue)
        args = [queue, qk.channel, 0, delay_ms, 0, 0, key_base, "0", value, f"crash-{i}-{value}"]  # its own op id
        script_keys = [*qk.message_keys, qk.meta, qk.operations(0)]
        library = scripts.library()
        client.function_load(library.code, replace=True)
        client.fcall(library.function("add"), len(script_keys), *script_keys, *args)

    def timer(self, queue: str) -> float | None:
        scores = [score for client in self.clients if (score := client.zscore(keys.TIMERS, queue)) is not None]
        return min(scores, default=None)

    def time_ms(self) -> int:
        seconds, micros = self.clients[0].time()
        return int(seconds) * 1000 + int(micros) // 1000


@pytest.fixture(params=["node", "ring", "cluster"])
def backends(request: pytest.FixtureRequest) -> Iterator[Backends]:
    if request.param == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        client = engine_client(engine)
        yield Backends([client], ["--redis", engine.url])
        client.close()
    elif request.param == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        clients = [engine_client(node) for node in ring]
        yield Backends(clients, [arg for node in ring for arg in ("--redis", node.url)])
        for client in clients:
            client.close()
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        routing = redis.RedisCluster(host="127.0.0.1", port=cluster.masters()[0], decode_responses=True)
        yield Backends([routing], ["--redis-cluster", cluster.url])
        routing.close()


def spread_names(prefix: str, backends: Backends, cluster: Cluster | None) -> list[str]:
    """Three queue names; on a cluster, one in a slot of each master (the repair must scan every primary)."""
    if cluster is None:
        return [f"{prefix}-{i}" for i in range(3)]
    by_master: dict[int, str] = {}
    for i in range(1000):
        name = f"{prefix}-{i}"
        by_master.setdefault(cluster_slot_owner(cluster, keys.queue_keys(name).meta), name)
    assert len(by_master) == 3, by_master
    return sorted(by_master.values())


async def test_the_repair_restores_registry_and_timer_entries_lost_in_a_crash(
    backends: Backends, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cluster = request.getfixturevalue("shared_cluster") if "--redis-cluster" in backends.serve_args else None
    kept, orphans = spread_names("kept", backends, cluster), spread_names("orphan", backends, cluster)
    with serve(backends.serve_args, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for queue in kept:
                for fields in ({"value": "now"}, {"value": "later", "delay": "60"}):
                    reply = await http.post(f"/q/{queue}", data=fields)
                    assert reply.status_code == 200, reply.text
            for i, queue in enumerate(orphans):
                backends.add_script_alone(i, queue, "orphaned", delay_ms=60_000)
            latest_due = backends.time_ms() + 60_000
            for queue in kept:
                backends.forget(queue)
            broken_at = time.monotonic()

            async def all_listed() -> bool:
                reply = await http.get("/q/", params={"limit": 1000})
                return set(kept + orphans) <= set(reply.json()["queues"])

            await wait_for(all_listed, 30, 0.05, "every queue listed again")
            listed_after = time.monotonic() - broken_at
            await wait_for(
                lambda: asyncio.to_thread(lambda: all(backends.timer(q) is not None for q in kept + orphans)),
                30,
                0.05,
                "every timer entry back",
            )
            timers_after = time.monotonic() - broken_at
            for queue in kept + orphans:
                assert (backends.timer(queue) or 0) <= latest_due  # never later than the delayed message is due

            async def all_counted() -> bool:
                # a ring server learns which nodes hold a queue from their registries, every 0.5 s
                reply = await http.get("/stats/", params={"limit": 1000})
                held = {s["queue"]: s["length"] + s["delayed"] for s in reply.json()["queues"]}
                return held == {**dict.fromkeys(kept, 2), **dict.fromkeys(orphans, 1)}

            await wait_for(all_counted, 10, 0.05, "/stats/ to count every message")
    print(f"repair: listed again after {listed_after:.2f} s, timers after {timers_after:.2f} s")


async def test_a_damaged_queue_does_not_stop_the_repair_of_the_others(
    engine: EmbeddedEngine, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A queue whose meta key holds the wrong type (written by another program) is skipped by the repair: the
    queues scanned with it are still restored, and nothing is logged as a crash."""
    redis_client.set(keys.queue_keys("damaged").meta, "not a hash")
    with serve(["--redis", engine.url], tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.post("/q/orphan", data={"value": "x"})).status_code == 200
            redis_client.zrem(keys.QUEUES, "orphan")  # as a crash between the add and its index write leaves it
            await wait_for(lambda: listed(http, "orphan"), 30, 0.05, "the orphaned queue listed again")
        assert "Traceback" not in server.log(), server.log()


# -- the reaper's timer write racing an add -----------------------------------------------------------------------


async def test_a_timer_set_while_the_reaper_sweeps_the_queue_stays_indexed(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The reaper sweeps a due queue and then raises or removes its timer entry; an add with a delay whose script
    runs in between wrote its (later) deadline with ZADD LT, which cannot lower an entry still due. Two stores
    stand for two server processes."""
    queue, rounds = "timed", 300
    reaper, producer = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    qk = keys.queue_keys(queue)
    lost = []
    try:
        for round_ in range(rounds):
            first = (await producer.add(queue, ["due"], delay_ms=60_000)).first
            redis_client.zadd(qk.delayed, {str(first): 1})  # its delay is over: the reaper has work
            redis_client.zadd(keys.TIMERS, {queue: 1})
            redis_client.delete(keys.REAPER_LOCK)
            yields = round_ % 60  # where the add lands among the reaper's commands
            await asyncio.gather(reaper.reap(), _after_yields(yields, producer.add(queue, ["later"], delay_ms=60_000)))
            delayed = cast(list[tuple[str, float]], redis_client.zrange(qk.delayed, 0, 0, withscores=True))
            entry = redis_client.zscore(keys.TIMERS, queue)
            if entry is None or entry > delayed[0][1]:
                lost.append(round_)
            await producer.purge(queue)
            redis_client.zrem(keys.TIMERS, queue)
    finally:
        await reaper.close()
        await producer.close()
    assert lost == [], f"{len(lost)} of {rounds} rounds left a delayed message's timer unindexed"


async def _after_yields(yields: int, call: Awaitable[T]) -> T:
    for _ in range(yields):
        await asyncio.sleep(0)  # lets the other task's commands go first: no time passes
    return await call


async def test_the_repair_never_lists_again_a_queue_purged_while_it_looked(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A repair step reads that a queue belongs in the registry, a purge empties and unlists it, then the step
    writes the entry it found missing: it must take it out again. Two stores stand for two server processes."""
    queue, rounds = "purged", 300
    repairer, admin = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    stale = []
    try:
        for round_ in range(rounds):
            await admin.add(queue, ["v"])
            redis_client.zrem(keys.QUEUES, queue)  # lost in a crash: the repair has work
            await asyncio.gather(repairer.index_repair.step(), _after_yields(round_ % 40, admin.purge(queue)))
            if redis_client.zscore(keys.QUEUES, queue) is not None:
                stale.append(round_)
    finally:
        await repairer.close()
        await admin.close()
    assert stale == [], f"{len(stale)} of {rounds} rounds left a purged, empty queue listed"
