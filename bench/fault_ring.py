"""A ring node's engine killed and restarted on its AOF while its queues hold messages, repeated.

Measures how long after the engine answers again GETs see its messages, and whether any GET answered 204 for a
queue whose messages sat on that node (proved by a later GET of the same queue returning one of them: nothing is
added to these queues during a round).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import redis
from fault_common import Context, Row, start_engine, statuses, wait_for
from fault_load import answered, cancel_after, client, outcome_of, pace
from fault_procs import wait_dead

from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine

DOWN = 1.0  # seconds between the kill and the restart


@dataclass
class Get:
    at: float
    queue: str
    outcome: str
    value: str | None


@dataclass
class Round:
    gets: list[Get] = field(default_factory=list)
    node_up: list[tuple[float, bool]] = field(default_factory=list)  # what /ready said of the restarted node
    filled: set[str] = field(default_factory=set)


async def reader(rnd: Round, base: str, queues: list[str], interval: float, stop: asyncio.Event) -> None:
    async with client(10) as http:
        i = 0
        while not stop.is_set():
            queue, start = queues[i % len(queues)], time.monotonic()
            i += 1
            try:
                reply = await http.get(f"{base}/q/{queue}")
                value = reply.json()["value"] if reply.status_code == 200 else None
                rnd.gets.append(Get(start, queue, answered(reply), value))
            except httpx.HTTPError as exc:
                rnd.gets.append(Get(start, queue, outcome_of(exc), None))
            await pace(stop, start + interval)


async def monitor(rnd: Round, base: str, stop: asyncio.Event) -> None:
    async with client(2) as http:
        while not stop.is_set():
            start = time.monotonic()
            with contextlib.suppress(httpx.HTTPError, ValueError, IndexError):
                nodes = list((await http.get(f"{base}/ready")).json()["nodes"].values())
                rnd.node_up.append((start, nodes[1] == "up"))
            await pace(stop, start + 0.1)


def queues_on(engine: EmbeddedEngine) -> set[str]:
    with redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True) as db:
        return set(db.zrange(keys.QUEUES, 0, -1))


@dataclass
class Outcome:
    visible_after: float | None  # seconds from the engine's restart to the first GET returning one of its messages
    hidden_up: int  # 204s for a queue with messages on the node while its engine was running
    hidden_up_ready: int  # ... of which while /ready reported the node up
    hidden_down: int  # 204s while the engine was down (expected)
    answers: Counter[str]
    lost: int
    filled: int
    twice: int


async def node_restart(ctx: Context) -> Row:
    nodes = [start_engine(ctx, "ring/node0"), start_engine(ctx, "ring/node1")]
    server = ctx.serve.start(ctx.stack, "ring", ctx.tmp, "--redis", nodes[0].url, "--redis", nodes[1].url)
    queues = [f"faults-ring-{i}" for i in range(8 if ctx.quick else 16)]
    outcomes = [await _round(ctx, server.url(""), nodes[1], queues, n) for n in range(ctx.repeats)]
    times = [o.visible_after for o in outcomes]
    shown = ", ".join("not back" if t is None else f"{t:.2f}" for t in times)
    answers = sum((o.answers for o in outcomes), Counter[str]())
    hidden = sum(o.hidden_up for o in outcomes)
    return Row(
        scenario="node restart",
        fault=f"a 2-node ring, one node's engine killed (-9) and restarted on its AOF, {ctx.repeats} time(s)",
        answers=f"GETs of its queues until its messages were seen: {statuses(answers)}",
        worst=f"{hidden} GETs answered 204 while the node's engine ran and held ready messages"
        f" ({sum(o.hidden_up_ready for o in outcomes)} while /ready reported it up;"
        f" {sum(o.hidden_down for o in outcomes)} more while it was down)",
        recovery=f"messages seen again after {shown} s" if shown else "-",
        lost=f"{sum(o.lost for o in outcomes)} of {sum(o.filled for o in outcomes)}",
        duplicated=str(sum(o.twice for o in outcomes)),
        notes="" if all(t is not None for t in times) else f"limit {ctx.limit:g} s",
    )


async def _round(ctx: Context, base: str, node: EmbeddedEngine, queues: list[str], n: int) -> Outcome:
    per_queue = 40 if ctx.quick else 100
    rnd = Round()
    async with client(30) as http:
        for queue in queues:
            values = [f"r{n}-{queue}-{i}" for i in range(per_queue)]
            (await http.post(f"{base}/q/{queue}", json=values)).raise_for_status()
            rnd.filled.update(values)
    mine = sorted(queues_on(node) & set(queues))
    if not mine:
        raise RuntimeError(f"no queue of {queues} landed on {node.url}")
    stop = asyncio.Event()
    interval = 2 / (60 if ctx.quick else 100)  # two readers
    tasks = [asyncio.create_task(reader(rnd, base, queues, interval, stop)) for _ in range(2)]
    tasks.append(asyncio.create_task(monitor(rnd, base, stop)))
    await asyncio.sleep(1)  # steady reads before the fault
    killed, pid = time.monotonic(), node.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_dead([pid])
    await asyncio.sleep(DOWN)  # down for a moment, as when a supervisor restarts it
    node.stop()  # reaps it and frees its lock; then a restart on the same AOF (blocks the loop ~0.1 s)
    node.start()
    back = time.monotonic()
    seen = lambda: any(g.at >= back and g.queue in mine and g.value in rnd.filled for g in rnd.gets)  # noqa: E731
    with contextlib.suppress(TimeoutError):
        await wait_for(seen, ctx.limit, "")
    visible = next((g.at for g in rnd.gets if g.at >= back and g.queue in mine and g.value in rnd.filled), None)
    await asyncio.sleep(2)  # keep reading: a node marked down again by stale connections shows here
    stop.set()
    await cancel_after(tasks, 15)
    await _drain(rnd, base, queues)
    return _outcome(rnd, set(mine), killed, back, visible)


async def _drain(rnd: Round, base: str, queues: list[str], timeout: float = 30) -> None:
    """GET every queue until two passes in a row find them all empty (or `timeout`)."""
    deadline, empty_passes = time.monotonic() + timeout, 0
    async with client(10) as http:
        while empty_passes < 2 and time.monotonic() < deadline:
            got = 0
            for queue in queues:
                with contextlib.suppress(httpx.HTTPError):
                    reply = await http.get(f"{base}/q/{queue}")
                    if reply.status_code == 200:
                        rnd.gets.append(Get(time.monotonic(), queue, "200", reply.json()["value"]))
                        got += 1
            empty_passes = empty_passes + 1 if got == 0 else 0


def _outcome(rnd: Round, mine: set[str], killed: float, back: float, visible: float | None) -> Outcome:
    last_filled: dict[str, float] = {}  # queue -> when its last message of this round was returned
    for g in rnd.gets:
        if g.value in rnd.filled:
            last_filled[g.queue] = max(last_filled.get(g.queue, 0.0), g.at)
    hidden = [g for g in rnd.gets if g.queue in mine and g.outcome == "204" and g.at < last_filled.get(g.queue, 0.0)]
    running = [g for g in hidden if g.at < killed or g.at >= back]
    delivered = Counter(g.value for g in rnd.gets if g.value in rnd.filled)
    until = visible if visible is not None else time.monotonic()
    return Outcome(
        visible_after=None if visible is None else visible - back,
        hidden_up=len(running),
        hidden_up_ready=sum(_reported_up(rnd, g.at) for g in running),
        hidden_down=len(hidden) - len(running),
        answers=Counter(g.outcome for g in rnd.gets if g.queue in mine and killed <= g.at <= until),
        lost=len(rnd.filled - set(delivered)),
        filled=len(rnd.filled),
        twice=sum(n - 1 for n in delivered.values()),
    )


def _reported_up(rnd: Round, at: float) -> bool:
    said = [up for when, up in rnd.node_up if when <= at]
    return bool(said and said[-1])
