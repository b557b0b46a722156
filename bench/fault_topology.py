"""Faults of one process among several: a server killed under roundrobin SSE consumers, a ring node restarted.

The engine is started here (fault_common.start_engine) and both servers use it with --redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from fault_common import Context, Row, start_engine, statuses, wait_for
from fault_load import answered, cancel_after, client, outcome_of, pace
from fault_procs import kill_tree, wait_dead

LATE = 1.0  # seconds: a delivery slower than this counts as late
DELIVERY_WAIT = 30.0  # seconds to wait for every acknowledged message once the producer stopped


# -- server kill ------------------------------------------------------------------------------------------


@dataclass
class Stream:
    sent: dict[str, float] = field(default_factory=dict)  # value -> when its add was sent
    acked: set[str] = field(default_factory=set)
    received: dict[str, list[float]] = field(default_factory=dict)  # value -> when each delivery arrived
    answers: list[tuple[float, str]] = field(default_factory=list)  # (when sent, outcome) of every add
    connected: int = 0
    victim_got: list[float] = field(default_factory=list)  # when consumers of the killed server received one


async def sse_consumer(stream: Stream, base: str, queue: str, on_victim: bool) -> None:
    """One roundrobin SSE consumer; it ends when its server goes away (it does not reconnect)."""
    with contextlib.suppress(httpx.HTTPError):
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
            http.stream("GET", f"{base}/sse/{queue}", headers={"Accept": "text/event-stream"}) as reply,
        ):
            stream.connected += reply.status_code == 200
            async for line in reply.aiter_lines():
                if line.startswith("data:"):
                    value = json.loads(line[5:])["value"]
                    stream.received.setdefault(value, []).append(time.monotonic())
                    if on_victim:
                        stream.victim_got.append(time.monotonic())


async def sse_producer(stream: Stream, base: str, queue: str, interval: float, stop: asyncio.Event) -> None:
    seq = 0
    async with client(10) as http:
        while not stop.is_set():
            value, start = f"s{seq}", time.monotonic()
            seq += 1
            stream.sent[value] = start
            try:
                reply = await http.post(f"{base}/q/{queue}", data={"value": value})
                stream.answers.append((start, answered(reply)))
                if reply.status_code == 200:
                    stream.acked.add(value)
            except httpx.HTTPError as exc:
                stream.answers.append((start, outcome_of(exc)))
            await pace(stop, start + interval)


async def server_kill(ctx: Context) -> Row:
    engine = start_engine(ctx, "shared-engine")
    survivor = ctx.serve.start(ctx.stack, "server-a", ctx.tmp, "--redis", engine.url)
    victim = ctx.serve.start(ctx.stack, "server-b", ctx.tmp, "--redis", engine.url)
    queue, per_server = "faults-roundrobin", max(2, ctx.consumers)
    httpx.post(survivor.url(f"/p/{queue}"), data={"policy": "roundrobin"}, timeout=10).raise_for_status()
    stream, stop = Stream(), asyncio.Event()
    consumers = [
        asyncio.create_task(sse_consumer(stream, server.url(""), queue, server is victim))
        for server in (survivor, victim)
        for _ in range(per_server)
    ]
    await wait_for(lambda: stream.connected >= 2 * per_server, 20, "the SSE consumers to connect")
    producer = asyncio.create_task(sse_producer(stream, survivor.url(""), queue, 1 / ctx.rate, stop))
    began = time.monotonic()
    await asyncio.sleep(ctx.warmup)  # steady load before the fault
    with contextlib.suppress(TimeoutError):  # a kill before they got any would test nothing (the notes tell)
        await wait_for(lambda: bool(stream.victim_got), 10, "the consumers of the server to kill to get messages")
    killed = time.monotonic()
    wait_dead(kill_tree(victim.proc.pid))
    await asyncio.sleep(max(ctx.warmup, 3.0))  # steady load after the fault
    stop.set()
    await cancel_after([producer], 15)
    everything = lambda: all(v in stream.received for v in stream.acked)  # noqa: E731
    with contextlib.suppress(TimeoutError):
        await wait_for(everything, max(ctx.limit, DELIVERY_WAIT), "")
    await cancel_after(consumers, 0)
    return _server_kill_row(stream, killed, killed - began, per_server, max(ctx.limit, DELIVERY_WAIT))


def _server_kill_row(stream: Stream, killed: float, warmup: float, per_server: int, limit: float) -> Row:
    delays = {v: min(times) - stream.sent[v] for v, times in stream.received.items() if v in stream.sent}
    before = sorted(d for v, d in delays.items() if stream.sent[v] < killed)
    after = [d for v, d in delays.items() if stream.sent[v] >= killed - 1]  # under way at the kill, or later
    lost = [v for v in stream.acked if v not in stream.received]
    twice = sum(len(times) - 1 for times in stream.received.values())
    baseline = statistics.median(before) if before else 0.0
    late = sum(d > LATE for d in after)
    return Row(
        scenario="server kill",
        fault=f"kill -9 of one of two `restmq serve` on one engine, {per_server} roundrobin SSE consumers on each",
        answers="adds to the surviving server: "
        + statuses(Counter(outcome for sent, outcome in stream.answers if sent >= killed)),
        worst=f"max delivery delay {max(after, default=0.0):.2f} s (before the kill: median {baseline * 1000:.0f} ms,"
        f" max {max(before, default=0.0):.2f} s); {late} of {len(after)} messages later than {LATE:g} s",
        recovery="-",
        lost=f"{len(lost)} of {len(stream.acked)}" + (f" (not delivered within {limit:g} s)" if lost else ""),
        duplicated=str(twice),
        notes=f"before the kill, {len(before) / warmup:.0f} adds/s; the killed server's consumers received"
        f" {sum(t < killed for t in stream.victim_got)} of {len(before)} messages",
    )
