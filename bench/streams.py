"""Streaming (SSE) benchmark: publish-to-consumer latency, broadcast fan-out, idle connection memory.

    .venv/bin/python bench/streams.py           # full run (about a minute)
    .venv/bin/python bench/streams.py --quick   # smaller and shorter

Starts its own embedded engine and one `python -m restmq serve` (one worker), writes bench/results/streams.json
and prints a markdown table. The load generator (this process, asyncio on uvloop with raw sockets) shares the
machine's cores with the server and the engine.

1. latency: 10 SSE consumers on one queue (broadcast); one publisher POSTs `value=<perf_counter_ns>` at a steady
   1,000 msg/s; each consumer parses every event: latency = receive time - send time (same process, same clock).
2. fan-out: 1,000 SSE consumers on one queue; N messages published as fast as possible in JSON batches of 100;
   deliveries/s until every consumer has all N. N defaults to 1,000, the server's per-connection mailbox: a
   consumer with more messages waiting to be written is disconnected as too slow, by design.
3. idle memory: 10,000 idle SSE connections (headers read, then never read again); server RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvloop
from run import ROOT, Server, busy_seconds, cpu_seconds, start_server

from restmq.storage.engine import EmbeddedEngine

BENCH = Path(__file__).resolve().parent
VALUE_RE = re.compile(rb'"value":"(\d+)"')
OPEN_CONCURRENCY = 200  # connections being opened at once (below uvicorn's listen backlog of 2048)
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# -- raw HTTP/1.1 client ----------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    return status, body


def post_request(queue: str, body: bytes, content_type: str) -> bytes:
    return (
        f"POST /q/{queue} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)


async def open_sse(port: int, queue: str, wait_retry: bool, timeout: float = 30.0) -> Conn:
    """An SSE connection whose response headers (and, with wait_retry, first event: the consumer is
    registered by then) were read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(f"GET /sse/{queue} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"SSE connect failed: {head.splitlines()[0].decode(errors='replace')}")
        if wait_retry:
            first = await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout)
            if b"retry:" not in first:
                raise RuntimeError(f"unexpected first SSE event: {first!r}")
    except BaseException:
        await close(writer)
        raise
    return reader, writer


async def open_many(port: int, queue: str, n: int, wait_retry: bool, conns: list[Conn]) -> list[str]:
    """Open up to n SSE connections into `conns`; stop at the first failures and return their errors."""
    sem = asyncio.Semaphore(OPEN_CONCURRENCY)
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            if errors:
                return
            try:
                conns.append(await open_sse(port, queue, wait_retry))
            except Exception as exc:  # EMFILE, 503 too many streams, timeouts ...
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one() for _ in range(n)))
    return errors


async def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(close(w) for _, w in conns))
    conns.clear()


class Consumer:
    """Reads one SSE stream until it has `expected` message events."""

    def __init__(self, conn: Conn, expected: int, latencies: bool) -> None:
        self.reader, self.writer = conn
        self.expected = expected
        self.count = 0
        self.latencies: list[int] | None = [] if latencies else None
        self.done_at: float | None = None
        self.eof = False

    async def run(self) -> None:
        buf = b""
        while self.count < self.expected:
            data = await self.reader.read(1 << 16)
            if not data:
                self.eof = True
                return
            now = time.perf_counter_ns()
            buf += data
            cut = buf.rfind(b"\n\n")  # every event is one chunk: events before the last blank line are whole
            if cut < 0:
                continue
            block, buf = buf[: cut + 2], buf[cut + 2 :]
            if self.latencies is None:
                self.count += block.count(b"\ndata: ")
            else:
                sent = [int(m) for m in VALUE_RE.findall(block)]
                self.latencies.extend(now - s for s in sent)
                self.count += len(sent)
        self.done_at = time.perf_counter()


# -- server probes ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_streams(server: Server) -> int:
    with urllib.request.urlopen(server.url("/metrics"), timeout=30) as response:
        text = response.read().decode()
    line = next(x for x in text.splitlines() if x.startswith("restmq_process_streams"))
    return int(float(line.split()[-1]))


async def wait_streams(server: Server, n: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while (count := await asyncio.to_thread(open_streams, server)) != n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return count


def cpu_now(server: Server) -> tuple[float, ...]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    mine = me.ru_utime + me.ru_stime
    return cpu_seconds(server.proc.pid), cpu_seconds(server.engine_pid), mine, busy_seconds()


def cores(before: tuple[float, ...], after: tuple[float, ...], wall: float) -> dict[str, float]:
    """Cores used by the server, the engine, this client and (others) every other process on the machine."""
    server, engine, client, busy = (b - a for a, b in zip(before, after, strict=True))
    used = {"server": server, "engine": engine, "client": client, "others": max(0.0, busy - server - engine - client)}
    return {f"{k}_cores": round(u / wall, 2) for k, u in used.items()}


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


# -- the three tests --------------------------------------------------------------------------


async def idle_memory(server: Server, n: int) -> dict[str, Any]:
    conns: list[Conn] = []
    try:
        await open_many(server.port, "bench-idle-warm", 100, True, conns)  # warm-up: imports, first allocations
        await close_all(conns)
        await wait_streams(server, 0)
        await asyncio.sleep(1)
        before = rss_kib(server.proc.pid)
        t0 = time.perf_counter()
        errors = await open_many(server.port, "bench-idle", n, False, conns)
        opened_in = time.perf_counter() - t0
        opened = len(conns)
        await asyncio.sleep(3)
        server.check()
        streams = await asyncio.to_thread(open_streams, server)
        after = rss_kib(server.proc.pid)
        per = (after - before) / opened if opened else float("nan")
        print(
            f"  idle: {opened:,}/{n:,} open ({streams:,} server streams), RSS {before:,} -> {after:,} KiB", flush=True
        )
        return {
            "requested": n,
            "opened": opened,
            "server_streams": streams,
            "open_seconds": round(opened_in, 2),
            "errors": errors[:5],
            "error_count": len(errors),
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": round(per, 2),
        }
    finally:
        await close_all(conns)
        await wait_streams(server, 0)


async def latency(server: Server, consumers: int, rate: int, seconds: int) -> dict[str, Any]:
    queue, total = "bench-latency", rate * seconds
    conns: list[Conn] = []
    posters: list[Conn] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        errors = await open_many(server.port, queue, consumers, True, conns)
        if errors:
            raise RuntimeError(f"latency: could not open the consumers: {errors[0]}")
        readers = [Consumer(c, total, latencies=True) for c in conns]
        tasks += [asyncio.create_task(r.run()) for r in readers]
        todo: asyncio.Queue[float | None] = asyncio.Queue()
        lags: list[float] = []
        failed: list[str] = []

        async def post_worker(conn: Conn) -> None:
            reader, writer = conn
            while (due := await todo.get()) is not None:
                sent = time.perf_counter_ns()
                lags.append(sent / 1e9 - due)
                writer.write(post_request(queue, b"value=%d" % sent, "application/x-www-form-urlencoded"))
                status, body = await read_response(reader)
                if status >= 300:
                    failed.append(f"{status} {body[:200]!r}")

        for _ in range(8):  # a few keep-alive connections so one slow response does not hold the rate back
            posters.append(await asyncio.open_connection("127.0.0.1", server.port))
        workers = [asyncio.create_task(post_worker(c)) for c in posters]
        tasks += workers
        before = cpu_now(server)
        t0 = time.perf_counter()
        period = 1 / rate
        for i in range(total):
            due = t0 + i * period
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            todo.put_nowait(due)
        for _ in workers:
            todo.put_nowait(None)
        await asyncio.gather(*workers)
        published = time.perf_counter() - t0
        _, pending = await asyncio.wait(tasks[: len(readers)], timeout=10)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(server), wall)
        server.check()
        lat = sorted(x / 1e6 for r in readers for x in r.latencies or ())
        received = sum(r.count for r in readers)
        expected = consumers * total
        result = {
            "consumers": consumers,
            "rate": rate,
            "seconds": seconds,
            "published": total - len(failed),
            "publish_errors": failed[:5],
            "publish_seconds": round(published, 3),
            "publish_rate": round(total / published, 1),
            "publish_lag_max_ms": round(max(lags) * 1000, 2),
            "received": received,
            "expected": expected,
            "unfinished_consumers": len(pending),
            "closed_consumers": sum(r.eof for r in readers),
            "deliveries_per_s": round(received / published, 1),
            "p50_ms": round(pct(lat, 50), 3) if lat else None,
            "p99_ms": round(pct(lat, 99), 3) if lat else None,
            "max_ms": round(lat[-1], 3) if lat else None,
            **used,
        }
        print(f"  latency: {json.dumps(result)}", flush=True)
        return result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(conns)
        await close_all(posters)
        await wait_streams(server, 0)


async def fanout(server: Server, consumers: int, messages: int, timeout: float) -> dict[str, Any]:
    queue = "bench-fanout"
    conns: list[Conn] = []
    tasks: list[asyncio.Task[None]] = []
    poster: Conn | None = None
    try:
        t_open = time.perf_counter()
        errors = await open_many(server.port, queue, consumers, True, conns)
        if errors:
            raise RuntimeError(f"fan-out: opened {len(conns)} of {consumers} consumers: {errors[0]}")
        open_seconds = time.perf_counter() - t_open
        readers = [Consumer(c, messages, latencies=False) for c in conns]
        tasks += [asyncio.create_task(r.run()) for r in readers]
        poster = await asyncio.open_connection("127.0.0.1", server.port)
        before = cpu_now(server)
        t0 = time.perf_counter()
        for start in range(0, messages, 100):
            batch = [f"{n:06d}".ljust(100, "m") for n in range(start, min(start + 100, messages))]
            poster[1].write(post_request(queue, json.dumps(batch).encode(), "application/json"))
            status, body = await read_response(poster[0])
            if status >= 300:
                raise RuntimeError(f"fan-out: batch add failed: {status} {body[:200]!r}")
        published = time.perf_counter() - t0
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(server), wall)
        server.check()
        finished = [r.done_at for r in readers if r.done_at is not None]
        received = sum(min(r.count, messages) for r in readers)
        elapsed = (max(finished) - t0) if len(finished) == len(readers) else wall
        result = {
            "consumers": consumers,
            "messages": messages,
            "open_seconds": round(open_seconds, 2),
            "publish_seconds": round(published, 3),
            "received": received,
            "expected": consumers * messages,
            "complete_consumers": len(finished),
            "closed_consumers": sum(r.eof for r in readers),
            "unfinished_consumers": len(pending),
            "seconds_until_all": round(elapsed, 3),
            "first_finished_s": round(min(finished) - t0, 3) if finished else None,
            "median_finished_s": round(statistics.median(finished) - t0, 3) if finished else None,
            "deliveries_per_s": round(received / elapsed, 1),
            **used,
        }
        print(f"  fan-out: {json.dumps(result)}", flush=True)
        return result
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(conns)
        if poster is not None:
            await close(poster[1])
        await wait_streams(server, 0)


# -- report -----------------------------------------------------------------------------------


def table(res: dict[str, Any]) -> str:
    lat, fan, idle = res["latency"], res["fanout"], res["idle"]

    def cpu(r: dict[str, Any]) -> str:
        return f"{r['server_cores']} / {r['engine_cores']} / {r['client_cores']} / {r['others_cores']}"

    def got(r: dict[str, Any]) -> str:
        ok = "yes" if r["received"] == r["expected"] else "**no**"
        return f"{r['received']:,} / {r['expected']:,} (all: {ok})"

    kib = idle["kib_per_connection"]
    lat_load = f"{lat['consumers']} consumers, {lat['rate']:,} msg/s for {lat['seconds']} s"
    lat_ms = f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ms"
    pub = f"{lat['publish_rate']:,.0f} msg/s, {lat['publish_lag_max_ms']} ms"
    fan_load = f"{fan['consumers']:,} consumers, {fan['messages']:,} msgs in batches of 100"
    fan_time = f"{fan['seconds_until_all']} s ({fan['first_finished_s']} / {fan['median_finished_s']} s)"
    opened = f"{idle['opened']:,} / {idle['requested']:,} (server counts {idle['server_streams']:,})"
    rss = f"{idle['rss_before_kib']:,} → {idle['rss_after_kib']:,} KiB"
    rows = [
        ("SSE latency", "load", lat_load),
        ("SSE latency", "publish-to-consumer p50 / p99 / max", lat_ms),
        ("SSE latency", "deliveries/s", f"{lat['deliveries_per_s']:,.0f}"),
        ("SSE latency", "received / expected", got(lat)),
        ("SSE latency", "achieved publish rate, max publisher lag", pub),
        ("SSE latency", "CPU cores server / engine / client / other processes", cpu(lat)),
        ("Fan-out", "load", fan_load),
        ("Fan-out", "deliveries/s", f"{fan['deliveries_per_s']:,.0f}"),
        ("Fan-out", "time until all consumers have all (first / median)", fan_time),
        ("Fan-out", "received / expected", got(fan)),
        ("Fan-out", "CPU cores server / engine / client / other processes", cpu(fan)),
        ("Idle memory", "connections open / requested", opened),
        ("Idle memory", "server RSS before → after", rss),
        ("Idle memory", "per connection (target < 20 KiB)", f"{kib} KiB ({'met' if kib < 20 else '**missed**'})"),
    ]
    return "\n".join(["| test | metric | value |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


async def run_all(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    print(f"idle memory: {args.idle:,} connections", flush=True)
    idle = await idle_memory(server, args.idle)  # first, on a fresh process: freed memory is not reused yet
    print(f"latency: 10 consumers, 1,000 msg/s for {args.seconds} s", flush=True)
    lat = await latency(server, 10, 1000, args.seconds)
    print(f"fan-out: {args.consumers:,} consumers, {args.messages:,} messages", flush=True)
    fan = await fanout(server, args.consumers, args.messages, args.timeout)
    return {"latency": lat, "fanout": fan, "idle": idle}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s latency, 300 fan-out consumers, 2,000 idle")
    parser.add_argument("--messages", type=int, default=1000, help="fan-out messages (default 1,000)")
    parser.add_argument("--timeout", type=float, default=120.0, help="fan-out: seconds to wait for all")
    args = parser.parse_args()
    args.seconds = 5 if args.quick else 10
    args.consumers = 300 if args.quick else 1000
    args.idle = 2000 if args.quick else 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # for us and, inherited, for the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks below run
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-streams-")))
        engine = EmbeddedEngine(tmp / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        assert engine.pid is not None
        limits = ["--max-streams", "20000", "--max-streams-per-client", "20000"]
        serve = ["-m", "restmq", "serve", "--redis", url, "--log-level", "warning", "--workers", "1", *limits]
        server = start_server(stack, "restmq", serve, tmp, "/ready", engine.pid)
        print(f"engine {url}, restmq :{server.port} (pid {server.proc.pid}), RLIMIT_NOFILE {hard}", flush=True)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run_all(server, args))
    exe = Path(sys.executable)
    shown = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else str(exe)
    results["command"] = " ".join([shown, "bench/streams.py", *sys.argv[1:]])
    results["settings"] = {**vars(args), "nofile_limit": hard, "cores": os.cpu_count()}
    results["load_average_at_end"] = os.getloadavg()
    out = BENCH / "results/streams.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(results)}\n")
    print(
        f"The load generator (this process: asyncio + uvloop, raw sockets) shares the {os.cpu_count()} cores with the "
        "server and the engine; client CPU is in the table."
    )
    print(f"wrote {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
