"""What one cheap request can make the server hold or do (issue 13: every request is bounded).

    .venv/bin/python bench/bounds.py           # 200 messages of 1 MiB (a minute or two)
    .venv/bin/python bench/bounds.py --quick   # 40 of them

It starts an embedded engine and, for each test, a fresh `restmq serve` (one worker, default limits unless
given after --), and measures the server's resident memory (RSS) above what it held before the test:

- replay: 4 SSE clients resume with Last-Event-ID from the start of a broadcast history of N messages of
  1 MiB, and never read (each replay is capped by --max-replay-bytes, 16 MiB by default);
- peek: 3 concurrent GET /peek/<queue>?limit=500 over N waiting messages of 1 MiB (--max-peek-bytes, 8 MiB);
- batch: one 8 MiB NDJSON body of 4 million lines with --max-batch 10,000: its answer, the time to it, and
  the longest GET /health took meanwhile (how long the event loop stalled).

Prints a table and writes bench/results/bounds.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from common import BENCH, command_line, machine, restmq_serve, rss_kib, start_server

from restmq.storage.engine import EmbeddedEngine

MIB = 1024 * 1024
VALUE = "x" * (MIB - 1024)  # a message of about 1 MiB, under the default --max-value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 messages instead of 200")
    parser.add_argument("--messages", type=int, help="messages of 1 MiB in the history and the queue")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the slow replay clients stay connected")
    parser.add_argument("extra", nargs="*", help="more `restmq serve` options (after --)")
    args = parser.parse_args()
    args.messages = args.messages or (40 if args.quick else 200)
    return args


async def peak_rss(pid: int, work: Awaitable[Any]) -> tuple[int, Any]:
    """The highest RSS (KiB) of `pid` while `work` runs, sampled every 20 ms, and `work`'s result."""
    task = asyncio.ensure_future(work)
    peak = rss_kib(pid)
    while not task.done():
        await asyncio.wait({task}, timeout=0.02)
        peak = max(peak, rss_kib(pid))
    return peak, task.result()


async def fill(base: str, queue: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(n):
            (await http.post(f"/q/{queue}", data={"value": VALUE})).raise_for_status()


async def broadcast_history(base: str, queue: str, n: int) -> None:
    """`n` messages streamed to an SSE consumer, so that they are in the queue's replay history."""
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60, read=None)) as client:
        async with client.stream("GET", f"/sse/{queue}", headers={"Accept": "text/event-stream"}) as response:
            filling = asyncio.create_task(fill(base, queue, n))
            seen, carry = 0, b""
            async for chunk in response.aiter_raw():
                data = carry + chunk
                seen += data.count(b"\nid: ")
                carry = data[-4:]  # shorter than the pattern: a match split over two chunks counts once
                if seen >= n:
                    break
            await filling


async def slow_replays(port: int, queue: str, clients: int, hold: float) -> int:
    """SSE clients that ask for the whole history and read nothing; returns how many the server accepted."""
    sockets = []
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        request = (
            f"GET /sse/{queue} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Last-Event-ID: {queue}:1\r\n\r\n"
        )
        await asyncio.get_running_loop().sock_sendall(sock, request.encode())
        sockets.append(sock)
    await asyncio.sleep(hold)  # a benchmark measures over a fixed time; the clients just sit there
    for sock in sockets:
        sock.close()
    return len(sockets)


async def peeks(base: str, queue: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        replies = await asyncio.gather(*(http.get(f"/peek/{queue}", params={"limit": "500"}) for _ in range(n)))
    return [len(r.json()["messages"]) for r in replies]


async def batch_stall(base: str) -> dict[str, Any]:
    body = b"1\n" * (4 * MIB)  # 8 MiB, 4,194,304 lines
    worst = 0.0
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        sending = asyncio.create_task(
            http.post("/q/batch", content=body, headers={"Content-Type": "application/x-ndjson"})
        )
        started = time.perf_counter()
        while not sending.done():
            probe = time.perf_counter()
            (await http.get("/health")).raise_for_status()
            worst = max(worst, time.perf_counter() - probe)
            await asyncio.sleep(0.01)
        response = await sending
        took = time.perf_counter() - started
    return {"status": response.status_code, "code": response.json().get("code"), "seconds": took, "health_max": worst}


def serve(stack: contextlib.ExitStack, url: str, tmp: Path, engine_pid: int, extra: list[str], name: str) -> Any:
    return start_server(stack, name, restmq_serve(url, "uvicorn", *extra), tmp, "/ready", engine_pid)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        engine = EmbeddedEngine(tmp / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        assert engine.pid is not None
        with contextlib.ExitStack() as server_stack:
            server = serve(server_stack, url, tmp, engine.pid, args.extra, "replay")
            base = server.url("")
            await broadcast_history(base, "big", args.messages)
            before = rss_kib(server.proc.pid)
            peak, accepted = await peak_rss(server.proc.pid, slow_replays(server.port, "big", 4, args.hold))
            results["replay"] = {"clients": accepted, "before_mib": before / 1024, "peak_mib": peak / 1024}
        with contextlib.ExitStack() as server_stack:
            server = serve(server_stack, url, tmp, engine.pid, args.extra, "peek")
            await fill(server.url(""), "pk", args.messages)
            before = rss_kib(server.proc.pid)
            peak, counts = await peak_rss(server.proc.pid, peeks(server.url(""), "pk", 3))
            results["peek"] = {"messages": counts, "before_mib": before / 1024, "peak_mib": peak / 1024}
        with contextlib.ExitStack() as server_stack:
            server = serve(server_stack, url, tmp, engine.pid, args.extra, "batch")
            before = rss_kib(server.proc.pid)
            peak, stall = await peak_rss(server.proc.pid, batch_stall(server.url("")))
            results["batch"] = {**stall, "before_mib": before / 1024, "peak_mib": peak / 1024}
    return results


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="restmq-bounds-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    replay, peek, batch = results["replay"], results["peek"], results["batch"]
    print(f"{args.messages} messages of 1 MiB; server RSS before -> peak (MiB)")
    print(f"replay, 4 slow clients:  {replay['before_mib']:.0f} -> {replay['peak_mib']:.0f}")
    print(f"peek, 3 x limit=500:     {peek['before_mib']:.0f} -> {peek['peak_mib']:.0f} ({peek['messages']} messages)")
    print(
        f"batch, 4M NDJSON lines:  {batch['before_mib']:.0f} -> {batch['peak_mib']:.0f}; {batch['status']} "
        f"{batch['code']} in {batch['seconds'] * 1000:.0f} ms, /health at worst {batch['health_max'] * 1000:.0f} ms"
    )
    out = BENCH / "results" / "bounds.json"
    out.parent.mkdir(exist_ok=True)
    document = {"command": command_line("bench/bounds.py"), "machine": machine(), "results": results}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
