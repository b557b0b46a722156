"""Push delivery: deliveries per second to a local receiver with 1 and 2 `restmq serve` processes, and the latency
from an add to the receiver (p50/p99).

One embedded engine (AOF everysec); each server process runs `restmq serve --redis <engine> --push-allow
127.0.0.1`. The receiver is a bare ASGI app on uvicorn in this process (a thread) answering 200 at once. Throughput:
`--messages` messages are queued first, then the subscription (max_in_flight 100) is created and the clock runs
until the receiver has them all. Latency: `--probes` single adds, one every 20 ms, timed from just before the POST
to the receiver's arrival (same clock: the receiver is in this process).

    .venv/bin/python bench/push.py [--messages N] [--probes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from common import command_line, free_port, machine, restmq_serve, start_server

from restmq.storage.engine import EmbeddedEngine

ARRIVED: dict[str, float] = {}  # webhook-id -> time.monotonic() of arrival


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    for name, value in scope["headers"]:
        if name == b"webhook-id":
            ARRIVED[value.decode()] = time.monotonic()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def start_receiver() -> str:
    port = free_port()
    config = uvicorn.Config(receiver_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}"


def start_servers(stack: contextlib.ExitStack, engine: EmbeddedEngine, n: int, logs: Path) -> list[str]:
    """n `restmq serve` processes on the engine, push allowed to loopback; stopped when `stack` closes."""
    assert engine.pid is not None
    serve = restmq_serve(engine.url, "uvicorn", "--push-allow", "127.0.0.1")
    return [start_server(stack, f"serve-{i}", serve, logs, "/ready", engine.pid).url("") for i in range(n)]


def throughput(url: str, target: str, queue: str, messages: int) -> float:
    ARRIVED.clear()
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, messages, 1000):
            client.post(f"/q/{queue}", json=[f"m{i}" for i in range(start, min(messages, start + 1000))])
        began = time.monotonic()
        client.post(f"/push/{queue}", json={"url": target + "/in", "max_in_flight": 100}).raise_for_status()
        while len(ARRIVED) < messages:
            if time.monotonic() - began > 300:
                raise SystemExit(f"only {len(ARRIVED)} of {messages} delivered")
            time.sleep(0.01)
        took = max(ARRIVED.values()) - began
        client.delete(f"/push/{queue}")
    return messages / took


def latency(url: str, target: str, queue: str, probes: int) -> tuple[float, float]:
    ARRIVED.clear()
    sent: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post(f"/push/{queue}", json={"url": target + "/in", "max_in_flight": 100}).raise_for_status()
        time.sleep(1.5)  # every process has read the subscription and waits on the queue's events
        for _ in range(probes):
            at = time.monotonic()
            key = client.post(f"/q/{queue}", data={"value": "probe"}).text.strip()
            sent[key] = at
            time.sleep(0.02)
        deadline = time.monotonic() + 60
        while len(ARRIVED) < probes and time.monotonic() < deadline:
            time.sleep(0.01)
        client.delete(f"/push/{queue}")
    waits = sorted((ARRIVED[key] - at) * 1000 for key, at in sent.items() if key in ARRIVED)
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.99))]


async def _baseline(target: str, requests: int) -> float:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(100)

        async def one(i: int) -> None:
            async with gate:
                await client.post(target + "/in", content=b"x", headers={"webhook-id": f"raw{i}"})

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return requests / (time.monotonic() - began)


def baseline(target: str, requests: int) -> float:
    """What this machine does without RestMQ: httpx POSTs (100 at once) from this process to the same receiver."""
    return asyncio.run(_baseline(target, requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=300)
    options = parser.parse_args()
    target = start_receiver()
    print(f"command: {command_line('bench/push.py')}")
    for key, value in machine().items():
        print(f"{key}: {value}")
    print(f"messages={options.messages} probes={options.probes}; load average before: {os.getloadavg()[0]:.1f}")
    print(f"baseline (httpx alone, 100 at once, to the same receiver): {baseline(target, 1000):,.0f} requests/s")
    print("| server processes | deliveries/s | add→receiver p50 ms | p99 ms |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedEngine(Path(tmp) / "engine") as engine:
        for n in (1, 2):
            with contextlib.ExitStack() as stack:
                first = start_servers(stack, engine, n, Path(tmp))[0]
                rate = throughput(first, target, f"bench{n}", options.messages)
                p50, p99 = latency(first, target, f"lat{n}", options.probes)
                print(f"| {n} | {rate:,.0f} | {p50:.1f} | {p99:.1f} |", flush=True)


if __name__ == "__main__":
    main()
