"""Long-poll benchmark (RestMQ only): consumers wait in `GET /q/<queue>?wait=5` while one publisher
POSTs at a steady rate; every message goes to exactly one waiting consumer.

Measures publish-to-consumer latency (the message carries its send time, read from the same clock)
and deliveries/s. Called by bench/run.py; the raw HTTP helpers come from bench/streams.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

from streams import PUBLISHERS, Target, close, cores, cpu_now, pct, read_response

VALUE = re.compile(rb'"value":"(\d+)"')
WAIT = 5  # seconds each long-poll may wait


async def long_poll(target: Target, consumers: int = 100, rate: int = 1000, seconds: int = 5) -> dict[str, Any]:
    queue, total = f"bench-longpoll-{time.monotonic_ns()}", rate * seconds
    latencies: list[int] = []
    failed: list[str] = []
    everyone = asyncio.Event()
    poll = f"GET /q/{queue}?wait={WAIT} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def consumer() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            while not everyone.is_set():
                writer.write(poll)
                status, body = await read_response(reader)
                if status == 200 and (found := VALUE.search(body)):
                    latencies.append(time.perf_counter_ns() - int(found[1]))
                    if len(latencies) >= total:
                        everyone.set()
                elif status != 204:
                    failed.append(f"GET {status} {body[:200]!r}")
        finally:
            await close(writer)

    async def publisher(share: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            for i in range(share):
                delay = t0 + (i * PUBLISHERS) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # the publishing schedule itself, not a wait for a condition
                writer.write(target.publish(queue, b"%d" % time.perf_counter_ns()))
                status, body = await read_response(reader)
                if status >= 300:
                    failed.append(f"POST {status} {body[:200]!r}")
        finally:
            await close(writer)

    waiting = [asyncio.create_task(consumer()) for _ in range(consumers)]
    try:
        await asyncio.sleep(0.5)  # let every consumer's first poll reach the server (it waits up to WAIT s)
        before = cpu_now(target)
        t0 = time.perf_counter()
        await asyncio.gather(*(publisher(total // PUBLISHERS + (i < total % PUBLISHERS)) for i in range(PUBLISHERS)))
        published = time.perf_counter() - t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), 10)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(target), wall)
        target.check()
    finally:
        everyone.set()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    lat = sorted(x / 1e6 for x in latencies)
    result = {
        "consumers": consumers,
        "rate": rate,
        "seconds": seconds,
        "expected": total,
        "received": len(latencies),
        "errors": failed[:5],
        "publish_rate": round(total / published, 1),
        "deliveries_per_s": round(len(latencies) / published, 1),
        "p50_ms": round(pct(lat, 50), 3) if lat else None,
        "p99_ms": round(pct(lat, 99), 3) if lat else None,
        "max_ms": round(lat[-1], 3) if lat else None,
        **used,
    }
    print(f"  long-poll {target.name}: {json.dumps(result)}", flush=True)
    return result
