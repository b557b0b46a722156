"""Lease benchmarks: what a lease+ack cycle costs against a plain destructive GET, and what the reaper costs.

    .venv/bin/python bench/leases.py           # full run (about 3-5 minutes)
    .venv/bin/python bench/leases.py --quick   # smaller and shorter (about a minute)

Starts its own embedded engine and one `restmq serve --redis <engine>` subprocess, then measures in the
same run, alternating round by round:

  (a) GET /q/<q> round trips/s (destructive pop) with ~50 concurrent asyncio httpx clients,
  (b) lease+ack cycles/s (GET /q/<q>?lease=30, then DELETE /q/<q>/<key>) with the same clients,
  (b') lease+ack cycles/s with the ack carried on the next lease (GET /q/<q>?lease=30&ack=<key>@<count>),

and reports the ratios (b)/(a) and (b')/(a) (target >= 0.6). Then (c), the reaper with N leased messages in flight
(100,000; 20,000 with --quick): the engine's CPU (INFO cpu) while they sit leased and unexpired for
10 s against the same engine with nothing leased; the time of one Store.reap() sweep once every lease
has expired; and the time until the reaper loop the server runs (restmq.web.app.run_reaper, every
0.25 s) has brought them all back.

Prints a table and writes bench/results/leases.json. Standalone: bench/run.py is separate.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from common import cpu_seconds, free_port

from restmq.core.model import PopMode
from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from restmq.web.app import run_reaper

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "leases.json"
VALUE = "m" * 100
CLIENTS = 50
RATIO_TARGET = 0.6
FILL_CHUNK = 5_000


@dataclass(frozen=True)
class Round:
    kind: str  # "get", "lease_ack" or "ack_next"
    round: int
    seconds: float
    operations: int  # GET round trips, or lease+ack cycles
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float  # restmq serve CPU per operation
    engine_cpu_ms: float  # engine CPU per operation


class Server:
    """`restmq serve --redis URL` as a subprocess."""

    def __init__(self, redis_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "restmq", "serve", "--redis", redis_url, "--port", str(self.port)]
            + ["--log-level", "warning"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"restmq serve exited with {self.proc.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"restmq serve did not become ready; see {log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fill(store: RedisStore, queue: str, n: int) -> None:
    for start in range(0, n, FILL_CHUNK):
        await store.add(queue, [VALUE] * min(FILL_CHUNK, n - start))


async def get_once(client: httpx.AsyncClient, queue: str) -> bool:
    return (await client.get(f"/q/{queue}")).status_code == 200


async def lease_ack_once(client: httpx.AsyncClient, queue: str) -> bool:
    got = await client.get(f"/q/{queue}", params={"lease": 30})
    if got.status_code != 200:
        return False
    message = got.json()
    acked = await client.delete(f"/q/{queue}/{message['key']}", params={"count": message["count"]})
    return acked.status_code == 200


def ack_next(held: dict[int, str]) -> Callable[[httpx.AsyncClient, str], Awaitable[bool]]:
    """A cycle with the ack carried on the next lease: GET ?lease=30&ack=<the key this client holds>@<count>."""

    async def once(client: httpx.AsyncClient, queue: str) -> bool:
        params = {"lease": "30", **({"ack": held.pop(id(client))} if id(client) in held else {})}
        got = await client.get(f"/q/{queue}", params=params)
        if got.status_code != 200 or got.headers.get("x-restmq-ack", "=ok").partition("=")[2] != "ok":
            return False
        message = got.json()
        held[id(client)] = f"{message['key']}@{message['count']}"
        return True

    return once


async def _clients(url: str, queue: str, kind: str, n: int, start_at: float, seconds: float) -> dict[str, Any]:
    one = {"get": get_once, "lease_ack": lease_ack_once}.get(kind) or ack_next({})
    latencies: list[float] = []
    counts = [0, 0]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(n)]
    try:
        await asyncio.gather(*(c.get("/health") for c in clients))  # connections open before the clock starts
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = time.perf_counter() + seconds

        async def loop(client: httpx.AsyncClient) -> None:
            while (now := time.perf_counter()) < stop_at:
                try:
                    ok = await one(client, queue)
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - now) * 1000)
                counts[0 if ok else 1] += 1

        await asyncio.gather(*(loop(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()
    return {"ok": counts[0], "errors": counts[1], "latencies": latencies}


def client_process(url: str, queue: str, kind: str, n: int, start_at: float, seconds: float) -> dict[str, Any]:
    """One load-generating process: `n` asyncio httpx clients, each with its own connection."""
    return asyncio.run(_clients(url, queue, kind, n, start_at, seconds))


async def throughput(store: RedisStore, server: Server, db: redis.Redis, args: argparse.Namespace) -> list[Round]:
    """(a), (b) and (b'), alternating round by round, each queue topped up before its round."""
    rounds: list[Round] = []
    loop = asyncio.get_running_loop()
    share = [CLIENTS // args.procs + (1 if i < CLIENTS % args.procs else 0) for i in range(args.procs)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.procs, mp_context=context) as pool:
        for number in range(1, args.rounds + 1):
            for kind, queue in (("get", "bench-get"), ("lease_ack", "bench-lease"), ("ack_next", "bench-next")):
                (stats,) = await store.stats([queue])
                want = int(args.seconds * args.ceiling)
                if stats.length < want:
                    await fill(store, queue, want - stats.length)
                start_at = time.time() + 1.5
                jobs = [
                    loop.run_in_executor(pool, client_process, server.url, queue, kind, n, start_at, args.seconds)
                    for n in share
                ]
                await asyncio.sleep(max(0.0, start_at - time.time()))
                cpu_before = cpu_seconds(server.proc.pid), engine_cpu(db)
                parts = await asyncio.gather(*jobs)
                server_cpu = cpu_seconds(server.proc.pid) - cpu_before[0]
                engine_used = engine_cpu(db) - cpu_before[1]
                ok = sum(p["ok"] for p in parts)
                latencies = [x for p in parts for x in p["latencies"]]
                (after,) = await store.stats([queue])
                if after.length == 0:
                    print(f"  warning: {queue} ran dry in round {number}; raise the ceiling", file=sys.stderr)
                result = Round(
                    kind,
                    number,
                    args.seconds,
                    ok,
                    round(ok / args.seconds, 1),
                    round(percentile(latencies, 0.5), 2),
                    round(percentile(latencies, 0.99), 2),
                    sum(p["errors"] for p in parts),
                    round(1000 * server_cpu / max(ok, 1), 4),
                    round(1000 * engine_used / max(ok, 1), 4),
                )
                rounds.append(result)
                print(
                    f"  round {number} {kind:9} {result.per_second:8.1f}/s  p50 {result.p50_ms:7.2f} ms"
                    f"  p99 {result.p99_ms:7.2f} ms  server CPU {result.server_cpu_ms:.3f} ms/op"
                    f"  engine CPU {result.engine_cpu_ms:.3f} ms/op"
                )
    return rounds


def engine_cpu(db: redis.Redis) -> float:
    info = db.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def cpu_over(db: redis.Redis, seconds: float) -> float:
    """The engine's CPU use over `seconds`, in percent of one core."""
    before, started = engine_cpu(db), time.perf_counter()
    await asyncio.sleep(seconds)
    return round(100 * (engine_cpu(db) - before) / (time.perf_counter() - started), 2)


async def reaper_cost(
    store: RedisStore, db: redis.Redis, redis_url: str, log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """(c) the reaper with args.leases leased messages in flight."""
    queue, n = "bench-reap", args.leases
    server = Server(redis_url, log)  # a real server process with its reaper, as in production
    try:
        idle_cpu = await cpu_over(db, args.idle)
        print(f"  engine CPU, nothing leased: {idle_cpu}% over {args.idle:g} s")

        started = time.perf_counter()
        await fill(store, queue, n)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        leased = 0
        while leased < n:
            leased += len((await store.pop(queue, PopMode.LEASE, 1000, 3_600_000)).messages)
        lease_s = time.perf_counter() - started
        (stats,) = await store.stats([queue])
        assert stats.leased == n, stats
        print(f"  {n} messages added in {fill_s:.2f} s and leased in {lease_s:.2f} s")

        leased_cpu = await cpu_over(db, args.idle)
        print(f"  engine CPU, {n} leased and unexpired: {leased_cpu}% over {args.idle:g} s")
    finally:
        server.stop()  # from here on only this process's reaper runs

    # Every lease runs out at once: move the deadlines into the past (and the queue's timer index entry).
    qk = keys.queue_keys(queue)
    members = db.zrange(qk.leased, 0, -1)
    with db.pipeline(transaction=False) as pipe:
        for start in range(0, len(members), 10_000):
            pipe.zadd(qk.leased, {m: 1 for m in members[start : start + 10_000]})
        pipe.zadd(keys.TIMERS, {queue: 1})
        pipe.delete(keys.REAPER_LOCK)
        pipe.execute()

    started = time.perf_counter()
    moved = await store.reap()
    sweep_s = time.perf_counter() - started
    print(f"  one reap() sweep: {sweep_s * 1000:.1f} ms, {moved} leases taken back")

    started = time.perf_counter()
    reaper = asyncio.create_task(run_reaper(store, 0.25))
    back_s: float | None = None
    try:
        while time.perf_counter() - started < args.comeback_timeout:
            if db.zcard(qk.leased) == 0:
                back_s = time.perf_counter() - started
                break
            await asyncio.sleep(0.05)
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
    remaining = int(db.zcard(qk.leased))
    if back_s is None:
        print(f"  reaper loop: {n - remaining} of {n} back after {args.comeback_timeout:g} s (gave up)")
    else:
        print(f"  reaper loop: all {n} leases back in {back_s:.2f} s")
    (stats,) = await store.stats([queue])
    return {
        "leases": n,
        "idle_seconds": args.idle,
        "engine_cpu_pct_nothing_leased": idle_cpu,
        "engine_cpu_pct_leases_idle": leased_cpu,
        "fill_seconds": round(fill_s, 3),
        "lease_seconds": round(lease_s, 3),
        "one_sweep_ms": round(sweep_s * 1000, 2),
        "one_sweep_moved": moved,
        "all_back_seconds": None if back_s is None else round(back_s, 3),
        "still_leased_at_end": remaining,
        "ready_at_end": stats.length,
    }


def summarize(rounds: list[Round]) -> dict[str, Any]:
    def median(kind: str, field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rounds if r.kind == kind))

    get, cycle, nexts = median("get", "per_second"), median("lease_ack", "per_second"), median("ack_next", "per_second")
    get_cost = median("get", "server_cpu_ms") + median("get", "engine_cpu_ms")
    cycle_cost = median("lease_ack", "server_cpu_ms") + median("lease_ack", "engine_cpu_ms")
    next_cost = median("ack_next", "server_cpu_ms") + median("ack_next", "engine_cpu_ms")
    return {
        "ack_next_per_second": round(nexts, 1),
        "ack_next_ratio": round(nexts / get, 3) if get else None,
        "ack_next_cpu_ms": round(next_cost, 4),
        "ack_next_cpu_ratio": round(get_cost / next_cost, 3) if next_cost else None,
        "get_per_second": round(get, 1),
        "lease_ack_per_second": round(cycle, 1),
        "ratio": round(cycle / get, 3) if get else None,
        "ratio_target": RATIO_TARGET,
        "get_cpu_ms": round(get_cost, 4),  # server + engine CPU per GET
        "lease_ack_cpu_ms": round(cycle_cost, 4),  # server + engine CPU per lease+ack cycle
        # the ratio a server-bound run would show: GETs cost get_cpu_ms each, cycles lease_ack_cpu_ms
        "cpu_ratio": round(get_cost / cycle_cost, 3) if cycle_cost else None,
    }


def table(summary: dict[str, Any], reap: dict[str, Any]) -> str:
    ratio = summary["ratio"]
    verdict = "meets" if ratio is not None and ratio >= RATIO_TARGET else "below"
    back = reap["all_back_seconds"]
    idle = f"(c) engine CPU, {reap['idle_seconds']:g} s"
    rows = [
        ("(a) GET /q/<q> (destructive), round trips/s", f"{summary['get_per_second']:.0f}"),
        ("(b) lease+ack cycles/s (GET ?lease=30, DELETE)", f"{summary['lease_ack_per_second']:.0f}"),
        ("(b)/(a) ratio", f"{ratio} ({verdict} target {RATIO_TARGET})"),
        ("    server+engine CPU per GET / per cycle", f"{summary['get_cpu_ms']} / {summary['lease_ack_cpu_ms']} ms"),
        ("    ratio when server-bound (CPU per GET / per cycle)", f"{summary['cpu_ratio']}"),
        ("(b') lease+ack cycles/s, ack= on the next lease", f"{summary['ack_next_per_second']:.0f}"),
        ("(b')/(a) ratio", f"{summary['ack_next_ratio']} (target {RATIO_TARGET})"),
        (
            "    server+engine CPU per cycle; ratio when server-bound",
            f"{summary['ack_next_cpu_ms']} ms; {summary['ack_next_cpu_ratio']}",
        ),
        (f"{idle}, nothing leased", f"{reap['engine_cpu_pct_nothing_leased']}%"),
        (f"{idle}, {reap['leases']} leases idle", f"{reap['engine_cpu_pct_leases_idle']}%"),
        ("(c) one reap() sweep, all leases expired", f"{reap['one_sweep_ms']} ms ({reap['one_sweep_moved']} back)"),
        ("(c) reaper loop: all leases back", "gave up" if back is None else f"{back:.2f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measure':<{width}}  value", f"{'-' * width}  {'-' * 30}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_end": [round(x, 2) for x in load],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="restmq-bench-leases-") as tmp:
        tmp_path = Path(tmp)
        with EmbeddedEngine(tmp_path / "engine") as engine:
            db = redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True)
            store = RedisStore.from_url(engine.url)
            log = tmp_path / "serve.log"
            try:
                print(f"throughput: {args.rounds} rounds x {args.seconds:g} s each, {CLIENTS} clients, alternating")
                server = Server(engine.url, log)
                try:
                    rounds = await throughput(store, server, db, args)
                finally:
                    server.stop()
                db.flushall()
                print(f"reaper: {args.leases} leases")
                reap = await reaper_cost(store, db, engine.url, log, args)
            finally:
                await store.close()
                db.close()
    summary = summarize(rounds)
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/leases.py", *sys.argv[1:]]),
        "machine": machine(),
        "clients": CLIENTS,
        "client_processes": args.procs,
        "throughput": summary,
        "rounds": [asdict(r) for r in rounds],
        "reaper": reap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds and 20,000 leases")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes sharing the 50 clients")
    args = parser.parse_args()
    args.rounds = 2 if args.quick else 4
    args.seconds = 3.0 if args.quick else 8.0
    args.ceiling = 6_000  # messages/s above what one client process can drive: queues never run dry
    args.leases = 20_000 if args.quick else 100_000
    args.idle = 3.0 if args.quick else 10.0
    args.comeback_timeout = 120.0 if args.quick else 300.0
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main_async(args))
    print()
    print(table(result["throughput"], result["reaper"]))
    print(f"machine: {result['machine']['cpus']} CPUs, load average at end {result['machine']['loadavg_at_end']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output.relative_to(Path.cwd()) if args.output.is_relative_to(Path.cwd()) else args.output}")


if __name__ == "__main__":
    main()
