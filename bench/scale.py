"""RestMQ over its backend modes: one node, a ring of 1, 2 and 3 nodes, and a Redis Cluster, in one run.

    .venv/bin/python bench/scale.py           # full run (a few minutes)
    .venv/bin/python bench/scale.py --quick   # a shorter smoke run
    .venv/bin/python bench/scale.py --topologies node ring-3 --workers 1 2 --rounds 3 --stats-queues 0  # capacity.md

For every topology it starts the backends it needs (embedded engines in a temporary directory, a 3-master
Redis Cluster with 3 replicas), then `restmq serve` with each --workers count (default one), and measures over
HTTP:

- publish: single-message POSTs to random queues out of --queues (so a ring spreads them over its nodes);
- consume: single-message GETs from random queues, pre-filled so that none runs empty;
- batch: POSTs of a JSON array of 100 messages to random queues (the load that binds the engine first);
- GET /stats/ with --stats-queues queues holding one message each: p50 and p99 of sequential calls.

Load comes from wrk (`-t1 -c<connections>`, a Lua script picking the queue per request) when it is
installed, else from as many concurrent asyncio httpx clients. Each load round also reads the CPU time the
server processes, every engine node and the load generator spent per request, and the first row's costs predict
every row's rate (bench/capacity.py: the lowest of the server-process, engine-node and machine-cores bounds),
shown beside the measured one. Results go to bench/results/scale.json and tables on stdout. Everything started is
stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import redis
from redis.crc import key_slot

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # for tests.helpers.cluster: the same cluster the tests use

import capacity  # noqa: E402
import common  # noqa: E402
from common import busy_seconds, cpu_seconds, die_with_parent, free_port  # noqa: E402

from restmq.storage.engine import EmbeddedEngine  # noqa: E402
from tests.helpers.cluster import Cluster, running_cluster  # noqa: E402

VALUE = "m" * 100
BATCH = 100  # messages per POST of the batch load

WRK_SCRIPT = """
-- picks a random queue per request; counts 200 and other answers per thread
local queues, method, prefix = %(queues)d, "%(method)s", "%(prefix)s"
local body = "value=" .. string.rep("m", 100)
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local batch = "[" .. string.rep('"' .. string.rep("m", 100) .. '",', 99) .. '"' .. string.rep("m", 100) .. '"]'
local json = {["Content-Type"] = "application/json"}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0; math.randomseed(os.time()) end
function request()
  local path = "/q/" .. prefix .. math.random(0, queues - 1)
  if method == "POST" then return wrk.format("POST", path, headers, body) end
  if method == "BATCH" then return wrk.format("POST", path, json, batch) end
  return wrk.format("GET", path)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, t in ipairs(threads) do good = good + t:get("ok"); bad = bad + t:get("other") end
  io.write(string.format('RESULT {"requests": %%d, "ok": %%d, "other": %%d, "duration_us": %%d, ' ..
    '"errors": %%d, "p50_us": %%.0f, "p99_us": %%.0f}\\n', summary.requests, good, bad, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

FILL_SCRIPT = """
-- one POST to each of %(count)d queues <prefix>0 .. <prefix>N-1, then GET /health until the runner stops wrk
-- (wrk ends only after -d; the runner watches the queue list). wrk builds one request before connecting and
-- never sends it: that first call returns the filler.
local count, prefix, sent, primed = %(count)d, "%(prefix)s", 0, false
local body = "value=" .. string.rep("m", 100)
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
function request()
  if not primed or sent >= count then
    primed = true
    return wrk.format("GET", "/health")
  end
  sent = sent + 1
  return wrk.format("POST", "/q/" .. prefix .. (sent - 1), headers, body)
end
"""


@dataclass
class Load:
    rate: float  # answered 200 per second
    requests: int
    ok: int
    other: int  # answers that were not 200 (a 204 on consume: a queue ran empty)
    p50_ms: float
    p99_ms: float
    server_cpu_us: float = math.nan  # CPU per request of the server processes, all engine nodes, the load generator
    engine_cpu_us: float = math.nan
    client_cpu_us: float = math.nan
    busiest_engine_share: float = math.nan  # of the engines' CPU, the busiest node's share
    other_cores: float = math.nan  # cores used meanwhile by processes outside the benchmark
    predicted: float = math.nan  # requests/s the model predicts from the first row's costs, and its binding bound
    bound: str = ""


@dataclass
class Row:
    topology: str
    nodes: int
    workers: int
    publish: Load
    consume: Load
    batch: Load  # its rate and CPU are per request: 100 messages
    stats_queues: int
    stats_p50_ms: float
    stats_p99_ms: float
    stats_samples: list[float]
    busiest_share: float = math.nan  # of the load's queues, the share the busiest engine node holds
    publish_rates: list[float] = field(default_factory=list)  # of each round (publish, consume: their medians)
    consume_rates: list[float] = field(default_factory=list)


def median_load(loads: list[Load]) -> Load:
    """Field by field, the median of the rounds."""
    numbers = [f.name for f in fields(Load) if f.name not in ("predicted", "bound")]
    return Load(**{name: statistics.median(getattr(x, name) for x in loads) for name in numbers})


def median_row(rounds: list[Row]) -> Row:
    first = rounds[0]
    publish, consume = median_load([r.publish for r in rounds]), median_load([r.consume for r in rounds])
    batch = median_load([r.batch for r in rounds])
    row = Row(first.topology, first.nodes, first.workers, publish, consume, batch, 0, math.nan, math.nan, [])
    row.publish_rates, row.consume_rates = [r.publish.rate for r in rounds], [r.consume.rate for r in rounds]
    return row


# -- processes --------------------------------------------------------------------------------------


@contextlib.contextmanager
def restmq(backend: list[str], tmp: Path, name: str, workers: int = 1) -> Any:
    """`restmq serve --workers <workers>` on a free port; yields its base URL and pid once /ready answers 200."""
    port = free_port()
    log = tmp / f"{name}.log"
    serve = [sys.executable, "-m", "restmq", "serve", *backend, "--port", str(port), "--workers", str(workers)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*serve, "--log-level", "warning"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"restmq exited {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"restmq did not get ready:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def flush(engines: list[EmbeddedEngine], cluster: Cluster | None) -> None:
    for engine in engines:
        with redis.Redis(unix_socket_path=engine.socket_path) as client:
            client.flushall()
    if cluster is not None:
        for port in cluster.masters():
            with redis.Redis(port=port) as client:
                client.flushall()


# -- load -------------------------------------------------------------------------------------------


def wrk_load(url: str, method: str, prefix: str, args: argparse.Namespace, tmp: Path) -> Load:
    script = tmp / f"{method.lower()}.lua"
    script.write_text(WRK_SCRIPT % {"queues": args.queues, "method": method, "prefix": prefix})
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    raw = json.loads(line.removeprefix("RESULT "))
    if raw["errors"]:
        raise RuntimeError(f"wrk counted {raw['errors']} socket errors:\n{out.stdout}")
    seconds = raw["duration_us"] / 1e6
    return Load(raw["ok"] / seconds, raw["requests"], raw["ok"], raw["other"], raw["p50_us"] / 1e3, raw["p99_us"] / 1e3)


async def httpx_load(url: str, method: str, prefix: str, args: argparse.Namespace) -> Load:
    latencies: list[float] = []
    counts = {"ok": 0, "other": 0}
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        deadline = time.monotonic() + args.duration

        async def one_client() -> None:
            while time.monotonic() < deadline:
                path = f"/q/{prefix}{random.randrange(args.queues)}"
                started = time.monotonic()
                if method == "POST":
                    reply = await client.post(path, data={"value": VALUE})
                elif method == "BATCH":
                    reply = await client.post(path, json=[VALUE] * BATCH)
                else:
                    reply = await client.get(path)
                latencies.append(time.monotonic() - started)
                counts["ok" if reply.status_code == 200 else "other"] += 1

        began = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(args.connections)))
        seconds = time.monotonic() - began
    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Load(counts["ok"] / seconds, len(latencies), counts["ok"], counts["other"], p50 * 1e3, p99 * 1e3)


def load(url: str, method: str, prefix: str, args: argparse.Namespace, tmp: Path) -> Load:
    if args.wrk:
        return wrk_load(url, method, prefix, args, tmp)
    return asyncio.run(httpx_load(url, method, prefix, args))


async def fill(url: str, names: list[str], per_queue: int, chunk: int = 1000) -> None:
    """`per_queue` messages in each queue, by batch POSTs (JSON arrays), 20 at a time."""
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(20)

        async def add(queue: str, n: int) -> None:
            async with gate:
                reply = await client.post(f"/q/{queue}", json=[VALUE] * n)
                reply.raise_for_status()

        jobs = [add(queue, min(chunk, per_queue - start)) for queue in names for start in range(0, per_queue, chunk)]
        await asyncio.gather(*jobs)


def wrk_one_message_each(url: str, prefix: str, count: int, connections: int, tmp: Path) -> None:
    script = tmp / "fill.lua"
    script.write_text(FILL_SCRIPT % {"count": count, "prefix": prefix})
    cmd = ["wrk", "-t1", f"-c{connections}", "-d600s", "--timeout", "30s", "-s", str(script), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        with httpx.Client(base_url=url, timeout=60) as client:
            while client.get("/q/", headers={"Accept": "application/json"}).json()["count"] < count:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"wrk ended before filling {count} queues: {proc.communicate()[0]}")
                time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate()


async def one_message_each(url: str, names: list[str], connections: int) -> None:
    """One message in each of many queues: concurrent single POSTs (there is no multi-queue batch call)."""
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        pending = iter(names)

        async def worker() -> None:
            for queue in pending:
                reply = await client.post(f"/q/{queue}", data={"value": VALUE})
                reply.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(connections)))


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def stats_latency(url: str, expected: int, samples: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(samples):
            started = time.monotonic()
            reply = client.get("/stats/")
            times.append((time.monotonic() - started) * 1e3)
            reply.raise_for_status()
            if reply.json()["count"] != expected:
                raise RuntimeError(f"/stats/ listed {reply.json()['count']} queues, not {expected}")
    return times


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Topology:
    name: str
    nodes: int  # engine nodes holding queues (a cluster's masters)
    backend: list[str]  # `restmq serve` options
    pids: list[int]  # every engine process (a cluster's replicas too: they spend CPU on each write, and the
    # busiest share measured is then of all six processes, not of the masters alone)
    busiest_share: float  # the share of the load's queues on its busiest node


def usage(server: int, engines: list[int]) -> list[float]:
    """CPU seconds of the server (with its workers), of each engine, of this process and its reaped children (wrk);
    of the whole machine; wall time."""
    own = sum(
        r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    return [cpu_seconds(server), *(cpu_seconds(pid) for pid in engines), own, busy_seconds(), time.monotonic()]


def watched_load(url: str, method: str, prefix: str, args: argparse.Namespace, tmp: Path, pids: list[int]) -> Load:
    """One load round, with the CPU per request of the server (pids[0]), the engines (pids[1:]) and the client."""
    before = usage(pids[0], pids[1:])
    result = load(url, method, prefix, args, tmp)
    spent = [a - b for a, b in zip(usage(pids[0], pids[1:]), before, strict=True)]
    server, engines, (client, busy, wall) = spent[0], spent[1:-3], spent[-3:]
    per_request = 1e6 / max(1, result.requests)
    result.server_cpu_us, result.client_cpu_us = server * per_request, client * per_request
    result.engine_cpu_us = sum(engines) * per_request
    result.busiest_engine_share = max(engines) / sum(engines) if sum(engines) else math.nan
    result.other_cores = max(0.0, busy - server - sum(engines) - client) / wall
    return result


def measure(topology: Topology, workers: int, args: argparse.Namespace, tmp: Path) -> Row:
    name = f"{topology.name} ×{workers}"
    with restmq(topology.backend, tmp, f"{topology.name}-{workers}", workers) as (url, pid):
        pids = [pid, *topology.pids]
        if not args.quick:
            load(url, "POST", "warm-", args, tmp)  # warm-up, not counted
        publish = watched_load(url, "POST", "pub-", args, tmp, pids)
        print(f"  {name:12} publish {publish.rate:9,.0f}/s  p50 {publish.p50_ms:6.2f} ms", flush=True)
        batch = watched_load(url, "BATCH", "bat-", args, tmp, pids)
        print(f"  {name:12} batch   {batch.rate * BATCH:9,.0f} msg/s  p50 {batch.p50_ms:6.2f} ms", flush=True)
        per_queue = max(100, math.ceil(2 * args.consume_ceiling * args.duration / args.queues))
        asyncio.run(fill(url, [f"sub-{i}" for i in range(args.queues)], per_queue))
        consume = watched_load(url, "GET", "sub-", args, tmp, pids)
        print(
            f"  {name:12} consume {consume.rate:9,.0f}/s  p50 {consume.p50_ms:6.2f} ms  ({consume.other} empty)",
            flush=True,
        )
    # /stats/ on a fresh server over flushed backends holding only the --stats-queues queues
    return Row(topology.name, topology.nodes, workers, publish, consume, batch, 0, math.nan, math.nan, [])


def predict(rows: list[Row], shares: dict[str, float]) -> None:
    """Every row's rate from the first row's CPU per request (bench/capacity.py), for its workers, its engine
    nodes and the cores other processes left free while it ran."""
    usable = len(os.sched_getaffinity(0))
    for row in rows:
        row.busiest_share = shares[row.topology]
    for kind in ("publish", "consume", "batch"):
        first: Load = getattr(rows[0], kind)
        costs = capacity.Costs(first.server_cpu_us, first.engine_cpu_us, first.client_cpu_us)
        for row in rows:
            measured: Load = getattr(row, kind)
            free = usable - measured.other_cores
            deployment = capacity.Deployment(row.workers, shares[row.topology], free)
            measured.predicted, measured.bound = capacity.predict(costs, deployment)


def prediction_table(rows: list[Row]) -> str:
    lines = [
        "| topology | workers | load | CPU µs/req server + engines + load generator | busiest engine's share "
        "(queues' share) | others' cores | predicted req/s (bound) | measured req/s | measured / predicted |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        for kind, m in (("publish", r.publish), ("consume", r.consume), ("batch of 100 (req/s)", r.batch)):
            lines.append(
                f"| {r.topology} | {r.workers} | {kind} | {m.server_cpu_us:.0f} + {m.engine_cpu_us:.0f} "
                f"+ {m.client_cpu_us:.0f} | {m.busiest_engine_share:.2f} ({r.busiest_share:.2f}) | {m.other_cores:.2f} "
                f"| {m.predicted:,.0f} ({m.bound}) | {m.rate:,.0f} "
                f"| {m.rate / m.predicted:.2f} |"
            )
    return "\n".join(lines)


def stats_round(row: Row, backend: list[str], args: argparse.Namespace, tmp: Path) -> None:
    with restmq(backend, tmp, f"{row.topology}-stats") as (url, _):
        began = time.monotonic()
        if args.wrk:
            wrk_one_message_each(url, "st-", args.stats_queues, args.connections, tmp)
        else:
            asyncio.run(one_message_each(url, [f"st-{i}" for i in range(args.stats_queues)], args.connections))
        filled = time.monotonic() - began
        times = stats_latency(url, args.stats_queues, args.stats_samples)
    ordered = sorted(times)
    row.stats_queues, row.stats_samples = args.stats_queues, [round(t, 2) for t in times]
    row.stats_p50_ms, row.stats_p99_ms = percentile(ordered, 50), percentile(ordered, 99)
    print(
        f"  {row.topology:8} /stats/ of {args.stats_queues:,} queues: p50 {row.stats_p50_ms:,.0f} ms, "
        f"p99 {row.stats_p99_ms:,.0f} ms (filled in {filled:.1f} s)",
        flush=True,
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| topology | nodes | workers | publish msg/s | p50 ms | p99 ms | consume msg/s | p50 ms | p99 ms "
        "| batch msg/s | p50 ms | /stats/ p50 ms | /stats/ p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        p, c, b = r.publish, r.consume, r.batch
        lines.append(
            f"| {r.topology} | {r.nodes} | {r.workers} | {p.rate:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
            f"| {c.rate:,.0f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} | {b.rate * BATCH:,.0f} | {b.p50_ms:.2f} "
            f"| {r.stats_p50_ms:,.0f} | {r.stats_p99_ms:,.0f} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    return {**common.machine(), "load average before the run": " ".join(f"{x:.2f}" for x in os.getloadavg())}


TOPOLOGIES = ("node", "ring-1", "ring-2", "ring-3", "cluster")


def cluster_share(masters: int, queues: list[str]) -> float:
    """The busiest master's share of `queues`, the slots split evenly among the masters (as the cluster is made)."""
    owners = [key_slot(f"{{{queue}}}".encode()) * masters // 16384 for queue in queues]
    return max(owners.count(m) for m in range(masters)) / len(owners)


def topologies(names: list[str], engines: list[EmbeddedEngine], cluster: Cluster | None, queues: int) -> list[Topology]:
    urls = [engine.url for engine in engines]
    pids = [engine.pid or 0 for engine in engines]
    pub = [f"pub-{i}" for i in range(queues)]
    share = {k: capacity.busiest_share(urls[:k], pub) for k in (1, 2, 3)}
    made = {
        "node": Topology("node", 1, ["--redis", urls[0]], pids[:1], 1.0),
        "ring-1": Topology("ring-1", 1, ["--redis", f"{urls[0]}?weight=1"], pids[:1], 1.0),  # through the ring code
        "ring-2": Topology("ring-2", 2, ["--redis", ",".join(urls[:2])], pids[:2], share[2]),
        "ring-3": Topology("ring-3", 3, ["--redis", ",".join(urls)], pids, share[3]),
    }
    if cluster is not None:
        masters = len(cluster.masters())
        every = [proc.pid for proc in cluster.procs.values()]
        made["cluster"] = Topology(
            "cluster", masters, ["--redis-cluster", cluster.url], every, cluster_share(masters, pub)
        )
    return [made[name] for name in names]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter rounds, fewer /stats/ samples, no warm-up")
    parser.add_argument("--duration", type=int, help="seconds per load round (default 5, quick 2)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--queues", type=int, default=200, help="queues the load spreads over")
    parser.add_argument("--topologies", nargs="+", choices=TOPOLOGIES, default=list(TOPOLOGIES), metavar="NAME")
    parser.add_argument("--workers", nargs="+", type=int, default=[1], help="server processes (`serve --workers`)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per setup, alternating; medians are shown")
    parser.add_argument("--stats-queues", type=int, default=10_000, help="0: no /stats/ rounds")
    parser.add_argument("--stats-samples", type=int, help="GET /stats/ calls per topology (default 20, quick 5)")
    parser.add_argument("--consume-ceiling", type=int, default=10_000, help="GET/s no run exceeds (pre-fill size)")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="httpx clients even if wrk is there")
    parser.add_argument("--output", type=Path, default=BENCH / "results/scale.json")
    args = parser.parse_args()
    args.duration = args.duration or (2 if args.quick else 5)
    args.stats_samples = args.stats_samples or (5 if args.quick else 20)
    args.wrk = args.wrk and shutil.which("wrk") is not None
    return args


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[list[Row], str]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-scale-")))
    engines = []
    for i in range(3):
        engine = EmbeddedEngine(tmp / f"node{i}")
        stack.callback(engine.stop)
        engine.start()
        engines.append(engine)
    cluster = stack.enter_context(running_cluster()) if "cluster" in args.topologies else None
    load_kind = f"wrk -t1 -c{args.connections}" if args.wrk else f"{args.connections} httpx clients"
    print(f"{load_kind}, {args.duration} s per round, {args.queues} queues; backends up", flush=True)
    chosen = topologies(args.topologies, engines, cluster, args.queues)
    setups = [(topology, workers) for topology in chosen for workers in args.workers]
    rounds: list[list[Row]] = [[] for _ in setups]
    for number in range(args.rounds):  # setups alternate round by round: the machine's drift hits all alike
        if args.rounds > 1:
            print(f"round {number + 1} of {args.rounds}", flush=True)
        for (topology, workers), done in zip(setups, rounds, strict=True):
            flush(engines, cluster)
            done.append(measure(topology, workers, args, tmp))
    rows = [median_row(done) for done in rounds]
    for row, (topology, workers) in zip(rows, setups, strict=True):
        if args.stats_queues and workers == args.workers[0]:  # listing queues does not depend on the workers
            flush(engines, cluster)
            stats_round(row, topology.backend, args, tmp)
    flush(engines, cluster)
    predict(rows, {t.name: t.busiest_share for t in chosen})
    return rows, load_kind


def main() -> int:
    args = parse_args()
    info = machine()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    with contextlib.ExitStack() as stack:
        rows, load_kind = run(args, stack)
    info["load average after the run"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    before, after = info["load average before the run"], info["load average after the run"]
    print(f"\n{table(rows)}\n\nload average (1, 5, 15 min) before the run {before}, after it {after}")
    print(f"\nThe capacity model (bench/capacity.py) from the first row's CPU per request:\n\n{prediction_table(rows)}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    data = {"machine": info, "settings": settings, "load": load_kind, "rows": [asdict(r) for r in rows]}
    args.output.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
