"""Redis Cluster mode beyond the shared suite (SPEC section 1): readiness, many long-polls, events from every
primary, and a master failover under load."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from restmq.config import Limits
from restmq.core import service
from restmq.storage import keys
from tests.helpers.cluster import Cluster, running_cluster
from tests.helpers.server import run_app
from tests.helpers.streams import sse, wait_consumers
from tests.helpers.topology import cluster_slot_owner, flush_cluster, wait_replicas_synced
from tests.helpers.wait import wait_for, wait_parked

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger("tests.cluster")


@pytest.fixture
async def cluster_app(shared_cluster: Cluster) -> AsyncIterator[str]:
    flush_cluster(shared_cluster)
    # 150 long-polls from this one address: more than the default stream slots per client (100)
    async with run_app(redis_cluster=shared_cluster.url, limits=Limits(max_streams_per_client=200)) as url:
        yield url


def queues_on(cluster: Cluster, prefix: str, per_master: int) -> dict[int, list[str]]:
    """`per_master` queue names whose slots each master serves: master port -> names."""
    found: dict[int, list[str]] = {port: [] for port in cluster.masters()}
    i = 0
    while any(len(names) < per_master for names in found.values()):
        name = f"{prefix}-{i}"
        owner = cluster_slot_owner(cluster, keys.queue_keys(name).meta)
        if len(found[owner]) < per_master:
            found[owner].append(name)
        i += 1
    return found


async def test_ready_lists_the_cluster(cluster_app: str, shared_cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster_app) as http:
        reply = await http.get("/ready")
        assert reply.status_code == 200
        assert reply.json() == {"status": "ready", "nodes": {shared_cluster.url: "up"}}
        assert (await http.get("/stats/")).json()["nodes"] == {shared_cluster.url: "up"}


async def test_150_long_polls_neither_exhaust_the_pool_nor_get_lost(cluster_app: str, shared_cluster: Cluster) -> None:
    queues = [name for names in queues_on(shared_cluster, "lp", 5).values() for name in names]  # 15 queues
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=cluster_app, timeout=30, limits=limits) as http:
        started = time.monotonic()
        polls = [asyncio.create_task(http.get(f"/q/{queues[i % 15]}", params={"wait": 5})) for i in range(150)]
        await wait_parked(http, 150, 20)  # every long-poll parked
        assert not any(poll.done() for poll in polls)
        # the server still serves everything else at once: no pooled connection is held by a waiting poll
        quick = time.monotonic()
        added = []
        for i in range(30):
            reply = await http.post(f"/q/{queues[i % 15]}", data={"value": f"v{i}"})
            assert reply.status_code == 200, reply.text
            added.append(reply.text.strip())
        assert (await http.get("/stats/")).status_code == 200
        assert time.monotonic() - quick < 10.0  # 31 requests (and 30 wake-ups): no wait for a pooled connection
        replies = await asyncio.wait_for(asyncio.gather(*polls), 20)
        assert time.monotonic() - started < 20
        codes = collections.Counter(reply.status_code for reply in replies)
        assert codes == {200: 30, 204: 120}, codes
        assert sorted(reply.json()["key"] for reply in replies if reply.status_code == 200) == sorted(added)


async def test_events_from_every_primary_wake_waiters_at_once(
    cluster_app: str, shared_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-poll on a queue of one primary must not wait while the process listens to the others."""
    # Only the event can end a wait early: no safety recheck within the polls' 30 s.
    monkeypatch.setattr(service, "SAFETY_RECHECK", 60.0)
    queues = [names[0] for names in queues_on(shared_cluster, "ev", 1).values()]
    async with httpx.AsyncClient(base_url=cluster_app, timeout=30) as http:
        for round_ in range(3):
            for target in queues:
                polls = {q: asyncio.create_task(http.get(f"/q/{q}", params={"wait": 30})) for q in queues}
                await wait_parked(http, len(queues))  # subscribed on every primary, every poll waiting
                added_at = time.monotonic()
                await http.post(f"/q/{target}", data={"value": f"{round_}"})
                reply = await asyncio.wait_for(polls.pop(target), 30)
                waited = time.monotonic() - added_at
                # woken by the event (a lost one would leave it waiting its 30 s), with room for a loaded machine
                assert reply.status_code == 200 and waited < 5, (target, waited)
                for q, poll in polls.items():  # the others got nothing: end them with a message each
                    await http.post(f"/q/{q}", data={"value": "end"})
                    assert (await asyncio.wait_for(poll, 10)).status_code == 200


# -- failover -------------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Producers and consumers over HTTP during a failover. Times are time.monotonic(); check() reports them
    in seconds relative to the kill."""

    http: httpx.AsyncClient
    queues: list[str]
    victim_queues: set[str]
    accepted: dict[str, float] = field(default_factory=dict)  # value -> when its add was answered 200
    sent: dict[str, float] = field(default_factory=dict)  # value -> when its add was sent
    failed: set[str] = field(default_factory=set)  # adds answered 503 or cut off: stored or not
    delivered: collections.Counter[str] = field(default_factory=collections.Counter)
    first_delivery: dict[str, float] = field(default_factory=dict)
    failed_reads: dict[str, list[float]] = field(default_factory=dict)  # queue -> when a GET of it failed (503)
    recovered_at: float | None = None  # first 200 to an add on the dead master's queues after the kill
    killed_at: float = math.inf  # when the master was killed
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic()

    def took(self, messages: list[dict[str, object]]) -> None:
        for message in messages:
            value = str(message["value"])
            self.delivered[value] += 1
            self.first_delivery.setdefault(value, self.now())

    async def produce(self, name: str) -> None:
        n = 0
        while not self.stop.is_set():
            queue = random.choice(self.queues)
            value = f"{queue}|{name}-{n}"
            n += 1
            sent = self.sent[value] = self.now()
            try:
                reply = await self.http.post(f"/q/{queue}", data={"value": value})
            except httpx.HTTPError:
                self.failed.add(value)
                continue
            if reply.status_code == 200:
                self.accepted[value] = self.now()
                if sent > self.killed_at and queue in self.victim_queues and self.recovered_at is None:
                    self.recovered_at = self.now() - self.killed_at  # sent after the kill: the new master's
            else:
                assert reply.status_code == 503, reply.text
                self.failed.add(value)
                await asyncio.sleep(0.05)  # back-off before trying again, not a wait for a condition

    async def consume(self) -> None:
        while not self.stop.is_set():
            queue = random.choice(self.queues)
            reply = await self.http.get(f"/q/{queue}", params={"count": 5})
            assert reply.status_code in (200, 204, 503), reply.text
            if reply.status_code == 200:
                self.took(reply.json())
            elif reply.status_code == 503:
                self.failed_reads.setdefault(queue, []).append(self.now())
                await asyncio.sleep(0.05)  # back-off before trying again, not a wait for a condition

    async def drain(self) -> None:
        for queue in self.queues:
            while (reply := await self.http.get(f"/q/{queue}", params={"count": 100})).status_code == 200:
                self.took(reply.json())
            assert reply.status_code == 204, reply.text

    def check(self, window: float = 1.0) -> None:
        """Every add answered 200 is delivered, except on the dead master's queues:
        - an add sent within the replication window just before the kill (the master answered, the replica
          had not received it);
        - a message taken by a GET that the dying master executed but never answered (that GET got a 503):
          a destructive read is at most once.
        A message delivered twice is on the dead master's queues too: its removal did not reach the replica,
        or the cluster client retried its add across the failover."""

        def since_kill(at: float) -> float:
            return round(at - self.killed_at, 3)

        lost = {
            v: (since_kill(self.sent[v]), since_kill(at)) for v, at in self.accepted.items() if v not in self.delivered
        }
        duplicated = {v: since_kill(self.first_delivery[v]) for v, n in self.delivered.items() if n > 1}
        unexplained = set(self.delivered) - set(self.accepted) - self.failed
        log.warning(
            "failover: recovered after %.2fs; %d adds accepted, %d failed (503); %d lost (sent, answered) %s; "
            "%d delivered twice (first delivery) %s; failed GETs of their queues %s",
            self.recovered_at,
            len(self.accepted),
            len(self.failed),
            len(lost),
            lost,
            len(duplicated),
            duplicated,
            {
                q: [since_kill(at) for at in self.failed_reads.get(q, [])]
                for q in {v.split("|")[0] for v in [*lost, *duplicated]}
            },
        )
        assert len(self.accepted) > 200
        assert not unexplained, sorted(unexplained)[:5]
        on_victim = {v for v in [*lost, *duplicated] if v.split("|")[0] in self.victim_queues}
        assert on_victim == {*lost, *duplicated}, (lost, duplicated)

        def explained(value: str, sent: float) -> bool:
            read_failed = any(
                -window <= since_kill(at) <= window for at in self.failed_reads.get(value.split("|")[0], [])
            )
            return -window <= sent <= 0 or read_failed

        assert all(explained(v, sent) for v, (sent, _) in lost.items()), (lost, self.failed_reads)
        assert len(lost) + len(duplicated) <= 10, (lost, duplicated)


async def test_master_failover_under_load() -> None:
    with running_cluster() as cluster:
        by_master = queues_on(cluster, "fo", 6)
        victim = next(port for port in by_master if port != cluster.ports[0])  # the seed stays up
        stream_queue = f"{by_master[victim][0]}-stream"
        while cluster_slot_owner(cluster, keys.queue_keys(stream_queue).meta) != victim:
            stream_queue += "x"

        async with (
            run_app(redis_cluster=cluster.url) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
            sse(url, stream_queue) as before,
        ):
            await wait_consumers(http, url, stream_queue, 1)
            for i in range(3):
                await http.post(f"/q/{stream_queue}", data={"value": f"pre-{i}"})
            await before.wait_count(3)

            queues = [name for names in by_master.values() for name in names]
            traffic = Traffic(http, queues, set(by_master[victim]))
            workers = [asyncio.create_task(traffic.produce(f"p{i}")) for i in range(3)]
            workers.append(asyncio.create_task(traffic.consume()))

            async def accepted(adds: int, what: str) -> None:
                """Wait for `adds` accepted adds in all: a window counted in work, however slow the machine is."""

                async def reached() -> bool:
                    if any(worker.done() for worker in workers):  # a failed assertion in a worker
                        await asyncio.gather(*workers)
                    return len(traffic.accepted) >= adds

                await wait_for(reached, 60.0, 0.05, what)

            await accepted(150, "traffic before the kill")
            await asyncio.to_thread(wait_replicas_synced, cluster)
            traffic.killed_at = time.monotonic()
            cluster.kill_node(victim)

            async def recovered() -> bool:
                if any(worker.done() for worker in workers):  # a failed assertion in a worker
                    await asyncio.gather(*workers)
                return traffic.recovered_at is not None

            await wait_for(recovered, 20.0, 0.05, "adds to the dead master's queues to succeed again")
            assert traffic.recovered_at is not None and traffic.recovered_at < 15.0, traffic.recovered_at
            await accepted(len(traffic.accepted) + 100, "traffic after the failover")  # and it keeps serving
            traffic.stop.set()
            await asyncio.gather(*workers)

            # the shard subscription moved to the promoted replica: the stream opened before the failover
            # and one opened after it both get new messages
            async with sse(url, stream_queue) as after:
                await wait_consumers(http, url, stream_queue, 2, timeout=20)
                post = [f"post-{i}" for i in range(5)]
                for value in post:
                    reply = await http.post(f"/q/{stream_queue}", data={"value": value})
                    assert reply.status_code == 200, reply.text
                await after.wait_count(5)
                await before.wait_count(8)
                assert [m["value"] for m in before.messages] == [f"pre-{i}" for i in range(3)] + post
                assert [m["value"] for m in after.messages] == post

            await traffic.drain()
        traffic.check()
