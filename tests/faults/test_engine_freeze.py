"""The embedded engine frozen (SIGSTOP) under producers that retry on 503 with an Idempotency-Key
(issue 14): every request is answered within --backend-timeout plus a margin, whatever the engine
does; after SIGCONT the service is back within seconds; no message is stored twice, none answered
200 is missing.

The freeze lasts FREEZE seconds rather than the issue's 30: the deadline does not depend on how long
the engine stays frozen, only that it outlasts several deadlines and redis-py's own 10 s socket
timeout (bench/faults.py measures the 30 s case)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from restmq.core import deadline
from restmq.core.model import PopMode
from restmq.errors import BackendUnavailable
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.sharded import ShardedStore
from restmq.storage.urls import redact
from tests.helpers.queues import drain_values
from tests.helpers.server import ServeProcess, serve
from tests.helpers.topology import engines
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

SERVERS = {"uvicorn": [], "granian": ["--server", "granian"]}
DEADLINE = 2.0  # --backend-timeout
MARGIN = 3.0  # seconds on top of the deadline: a busy 2-core machine, granian's worker hop
FREEZE = 12.0
RECOVERY_BOUND = 5.0  # seconds from SIGCONT to the next 200 (bench target: 1 s)
PRODUCERS = 6


@dataclass
class Load:
    """What the clients saw: every request's duration and status, and each add answered 200."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key (= value) -> message key
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def timed(self, kind: str, call: Awaitable[httpx.Response]) -> httpx.Response:
        began = time.monotonic()
        response = await call
        self.durations.setdefault(kind, []).append(time.monotonic() - began)
        self.statuses[response.status_code] += 1
        assert response.status_code in (200, 204, 503), (kind, response.status_code, response.text)
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert response.json()["code"] == "BACKEND_UNAVAILABLE"
        return response


async def produce(base: str, name: str, load: Load) -> None:
    """Add messages one by one; retry each on 503 with the same Idempotency-Key until it is answered 200."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        seq = 0
        while not load.stop.is_set():
            key = f"{name}-{seq}"
            while True:
                post = http.post("/q/frozen", data={"value": key}, headers={"Idempotency-Key": key})
                response = await load.timed("add", post)
                if response.status_code == 200:
                    load.acked[key] = response.text.strip()
                    break
                await asyncio.sleep(0.1)  # a producer's back-off before trying again, not a wait for a condition
            seq += 1


async def read(base: str, load: Load) -> None:
    """Long-polls on an empty queue and statistics through the router, side by side with the adds."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while not load.stop.is_set():
            await load.timed("long-poll", http.get("/q/idle", params={"wait": 1}))
            await load.timed("stats", http.get("/stats/frozen"))


def engine_pid(data: Path) -> int:
    return int((data / "valkey.pid").read_text())


async def recovery_after(process: ServeProcess) -> float:
    """Seconds until an add answers 200 again."""
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=process.url, timeout=120) as http:

        async def adds() -> bool:
            return (await http.post("/q/probe", data={"value": "back"})).status_code == 200

        await wait_for(adds, RECOVERY_BOUND * 4, 0.02, "adds to work again")
    return time.monotonic() - began


@pytest.mark.parametrize("server", SERVERS)
async def test_a_frozen_engine_delays_no_answer_past_the_deadline_and_duplicates_nothing(
    server: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--backend-timeout", str(DEADLINE), *SERVERS[server]]
    with serve(args, tmp_path) as process:
        load = Load()
        names = [f"p{i}" for i in range(PRODUCERS)]
        clients = [asyncio.create_task(produce(process.url, name, load)) for name in names]
        clients.append(asyncio.create_task(read(process.url, load)))

        async def everyone_added() -> bool:
            return all(any(key.startswith(f"{name}-") for key in load.acked) for name in names)

        await wait_for(everyone_added, 20, 0.05, "every producer to add")
        pid = engine_pid(data)
        os.kill(pid, signal.SIGSTOP)
        try:
            # the fault itself: the engine stays frozen this long (adds answered as it stopped are in by then)
            await asyncio.sleep(DEADLINE + MARGIN)
            before = len(load.acked)
            await asyncio.sleep(FREEZE - DEADLINE - MARGIN)
            assert len(load.acked) == before, "an add was answered 200 while the engine was frozen"
            assert load.statuses[503] >= PRODUCERS, load.statuses  # each producer got its 503s, at the deadline
        finally:
            os.kill(pid, signal.SIGCONT)
        recovery = await recovery_after(process)
        assert recovery < RECOVERY_BOUND, f"adds answered 200 again {recovery:.1f}s after SIGCONT"

        resumed = len(load.acked)

        async def going_again() -> bool:
            return len(load.acked) >= resumed + 3 * PRODUCERS

        await wait_for(going_again, 20, 0.05, "the producers to go on")
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 60)

        async with httpx.AsyncClient(base_url=process.url, timeout=60) as http:
            values = await drain_values(http, "frozen", 1000)
    slowest = {kind: max(durations) for kind, durations in load.durations.items()}
    assert slowest["add"] < DEADLINE + MARGIN, slowest
    assert slowest["stats"] < DEADLINE + MARGIN, slowest
    assert slowest["long-poll"] < 1 + DEADLINE + MARGIN, slowest
    twice = [value for value, n in Counter(values).items() if n > 1]
    assert not twice, f"{len(twice)} messages stored twice, e.g. {twice[:5]}"
    assert set(values) == set(load.acked), set(load.acked) ^ set(values)


async def test_on_a_ring_a_request_out_of_time_blames_only_the_frozen_node(tmp_path: Path) -> None:
    """A read that spent its whole deadline on the frozen node finds no time left for the next one: that
    node was never asked, and stays up."""
    with engines(tmp_path, 2) as (frozen, healthy):
        store = ShardedStore([frozen.url, healthy.url])
        try:
            os.kill(frozen_pid(frozen), signal.SIGSTOP)
            try:
                for i in range(12):  # some queues start their ring walk on the frozen node, some on the other
                    began = time.monotonic()
                    token = deadline.start(DEADLINE)
                    try:
                        with contextlib.suppress(BackendUnavailable):
                            await store.pop(f"q{i}", PopMode.TAKE)
                    finally:
                        deadline.finish(token)
                    assert time.monotonic() - began < DEADLINE + MARGIN
                    assert store.node_states()[redact(healthy.url)] == "up", i
                assert store.node_states()[redact(frozen.url)] == "down"
            finally:
                os.kill(frozen_pid(frozen), signal.SIGCONT)
        finally:
            await store.close()


def frozen_pid(engine: EmbeddedEngine) -> int:
    pid = engine.pid
    assert pid is not None
    return pid
