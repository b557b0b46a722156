"""Request-rate tests: wrk (and redis-benchmark for the engine itself) against each contender, in
alternating rounds, with the CPU time every process spent per request."""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis
from baseline_app import key_of
from common import BENCH, busy_seconds, cpu_seconds, http

VALUE = "m" * 100  # every message is 100 bytes, as in the wrk scripts
GET_CEILING = 40_000  # req/s above any one worker: take queues are topped up to duration x this before a round
FILL_CHUNK = 1_000  # messages per pre-fill request / command


@dataclass(frozen=True)
class Test:
    name: str
    label: str
    script: str  # wrk Lua script in bench/
    messages: float  # messages per request (a lease+ack cycle is two requests)


TESTS = {
    t.name: t
    for t in (
        Test("post", "POST 1 msg", "post.lua", 1),
        Test("get", "GET 1 msg", "get.lua", 1),
        Test("batch", "POST 100 msgs", "batch.lua", 100),
        Test("lease", "lease + ack", "leaseack.lua", 0.5),
        Test("next", "lease + ack= on the next lease", "leasenext.lua", 1),
    )
}


@dataclass(frozen=True)
class Round:
    contender: str
    test: str
    round: int
    requests: int
    seconds: float
    rps: float
    msgs: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_us: float  # CPU time per request of the server process, and of the engine
    engine_cpu_us: float
    other_cores: float  # CPU used meanwhile by processes outside this benchmark (cores)


class Contender(Protocol):
    name: str
    tests: tuple[str, ...]

    def prepare(self, test: Test, seconds: float) -> None: ...
    def load(self, test: Test, seconds: float, connections: int) -> dict[str, Any]: ...
    def pids(self) -> tuple[int, int | None]: ...
    def messages(self, test: Test) -> float: ...
    def after(self, test: Test) -> None: ...


def wrk(url: str, script: str, seconds: float, connections: int, check: Callable[[], None]) -> dict[str, Any]:
    """One wrk run (one thread: the machine has few cores); its counts and latency percentiles."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    cmd += ["-s", str(BENCH / script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    check()
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    if any(result["errors"].values()):
        raise RuntimeError(f"{url}: wrk counted errors {result['errors']}\n{out.stdout}")
    return result


@dataclass
class WrkContender:
    """An HTTP server under wrk: RestMQ, the bare app, nginx + nchan."""

    name: str
    tests: tuple[str, ...]
    url: Callable[[str], str]  # the URL of a test's queue or channel
    pid: int
    engine_pid: int | None
    check: Callable[[], None]
    fill: Callable[[str, int], None] = lambda queue, n: None
    depth: Callable[[str], int] = lambda queue: 0
    purge: Callable[[str], None] = lambda queue: None

    def prepare(self, test: Test, seconds: float) -> None:
        queue = f"bench-{test.name}"
        if test.name in ("get", "lease", "next"):
            missing = round(seconds * GET_CEILING) - self.depth(queue)
            if missing > 0:
                self.fill(queue, missing)
        else:
            self.purge(queue)  # every add round starts from an empty queue (and memory stays bounded)

    def load(self, test: Test, seconds: float, connections: int) -> dict[str, Any]:
        return wrk(self.url(f"bench-{test.name}"), test.script, seconds, connections, self.check)

    def pids(self) -> tuple[int, int | None]:
        return self.pid, self.engine_pid

    def messages(self, test: Test) -> float:
        return test.messages

    def after(self, test: Test) -> None:
        if test.name in ("get", "lease", "next") and self.depth(f"bench-{test.name}") == 0:  # a 204 is no error to wrk
            raise RuntimeError(f"{self.name}: the {test.name} queue ran empty; raise GET_CEILING")


def restmq(name: str, port: int, pid: int, engine_pid: int, check: Callable[[], None]) -> WrkContender:
    base = f"http://127.0.0.1:{port}"

    def fill(queue: str, n: int) -> None:
        for start in range(0, n, FILL_CHUNK):
            http("POST", f"{base}/q/{queue}", json.dumps([VALUE] * min(FILL_CHUNK, n - start)).encode())

    def depth(queue: str) -> int:
        return int(json.loads(http("GET", f"{base}/stats/{queue}"))["length"])

    def purge(queue: str) -> None:
        http("DELETE", f"{base}/q/{queue}")

    tests = ("post", "get", "batch", "lease", "next")
    return WrkContender(name, tests, lambda q: f"{base}/q/{q}", pid, engine_pid, check, fill, depth, purge)


def baseline(port: int, pid: int, engine_pid: int, db: redis.Redis, check: Callable[[], None]) -> WrkContender:
    def fill(queue: str, n: int) -> None:
        with db.pipeline(transaction=False) as pipe:
            for start in range(0, n, FILL_CHUNK):
                pipe.lpush(key_of(queue), *[VALUE] * min(FILL_CHUNK, n - start))
            pipe.execute()

    def depth(queue: str) -> int:
        return int(db.llen(key_of(queue)))

    def purge(queue: str) -> None:
        db.delete(key_of(queue))

    url = f"http://127.0.0.1:{port}/q/"
    return WrkContender(
        "baseline", ("post", "get", "batch"), lambda q: url + q, pid, engine_pid, check, fill, depth, purge
    )


def nchan_publisher(port: int, pid: int, check: Callable[[], None]) -> WrkContender:
    """nginx + nchan publishing (the wrk POST body as one message) to a channel nobody reads."""
    return WrkContender("nchan", ("post",), lambda q: f"http://127.0.0.1:{port}/pub/{q}", pid, None, check)


@dataclass
class EngineContender:
    """The engine's own LPUSH rate from redis-benchmark: 50 clients, 100-byte values, without
    pipelining (beside single POSTs) and with 32 commands per round trip (beside batch adds)."""

    socket: str
    pid: int
    name: str = "engine"
    tests: tuple[str, ...] = ("post", "batch")
    rate: dict[str, float] = field(default_factory=lambda: {"post": 100_000.0, "batch": 500_000.0})

    def prepare(self, test: Test, seconds: float) -> None:
        pass

    def load(self, test: Test, seconds: float, connections: int) -> dict[str, Any]:
        pipeline = 1 if test.name == "post" else 32
        n = max(10_000, round(self.rate[test.name] * seconds))  # redis-benchmark counts requests, not time
        cmd = ["redis-benchmark", "-s", self.socket, "-c", str(connections), "-n", str(n), "-P", str(pipeline)]
        cmd += ["-d", "100", "-t", "lpush", "--csv"]
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 10 + 60, check=False)
        elapsed = time.perf_counter() - started
        rows = [line.replace('"', "").split(",") for line in out.stdout.splitlines()]
        data = next((r for r in rows if r and r[0].startswith("LPUSH")), None)
        if out.returncode != 0 or data is None:
            raise RuntimeError(f"redis-benchmark failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        header = next(r for r in rows if r and r[0] == "test")
        values = dict(zip(header, data, strict=False))
        rps = float(values["rps"])
        self.rate[test.name] = rps
        ms = {p: float(values[f"{p}_latency_ms"]) for p in ("p50", "p99", "max")}
        return {
            "requests": n,
            "duration_us": n / rps * 1e6 if rps else elapsed * 1e6,
            # redis-benchmark reports p95, not p90
            "latency_us": {"p50": ms["p50"] * 1e3, "p90": math.nan, "p99": ms["p99"] * 1e3, "max": ms["max"] * 1e3},
        }

    def pids(self) -> tuple[int, int | None]:
        return self.pid, None  # the engine is the server here

    def messages(self, test: Test) -> float:
        return 1  # one LPUSH of one value per command

    def after(self, test: Test) -> None:
        pass


def usage(pids: tuple[int, ...]) -> list[float]:
    """CPU seconds of each pid, of this process with its reaped children (wrk), of the machine; wall time."""
    mine = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    local = sum(r.ru_utime + r.ru_stime for r in mine)
    return [*(cpu_seconds(pid) for pid in pids), local, busy_seconds(), time.monotonic()]


def run_round(contender: Contender, test: Test, number: int, seconds: float, connections: int) -> Round:
    contender.prepare(test, seconds)
    server_pid, engine_pid = contender.pids()
    pids = (server_pid,) if engine_pid is None else (server_pid, engine_pid)
    before = usage(pids)
    raw = contender.load(test, seconds, connections)
    spent = [a - b for a, b in zip(usage(pids), before, strict=True)]
    contender.after(test)
    server, engine = spent[0], (spent[1] if engine_pid is not None else 0.0)
    local, busy, wall = spent[-3:]
    elapsed = raw["duration_us"] / 1e6
    rps = raw["requests"] / elapsed
    latency = {f"{k}_ms": raw["latency_us"][k] / 1000 for k in ("p50", "p90", "p99", "max")}
    return Round(
        contender.name,
        test.name,
        number,
        raw["requests"],
        elapsed,
        rps,
        rps * contender.messages(test),
        **latency,
        server_cpu_us=1e6 * server / raw["requests"],
        engine_cpu_us=1e6 * engine / raw["requests"],
        other_cores=max(0.0, busy - server - engine - local) / wall,
    )


def measure(contenders: list[Contender], rounds: int, seconds: float, warmup: float, connections: int) -> list[Round]:
    """Every test, contenders alternating round by round (A, B, C, A, B, C ...): drift hits all alike."""
    done: list[Round] = []
    for test in TESTS.values():
        mine = [c for c in contenders if test.name in c.tests]
        for contender in mine if warmup else ():
            contender.prepare(test, warmup)
            contender.load(test, warmup, connections)
        for number in range(1, rounds + 1):
            for contender in mine:
                r = run_round(contender, test, number, seconds, connections)
                print(
                    f"  {test.name:5} round {number} {r.contender:8} {r.rps:9,.0f} req/s {r.msgs:10,.0f} msg/s"
                    f"  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
                    f"  CPU {r.server_cpu_us:4.0f} + {r.engine_cpu_us:4.0f} µs/req, others {r.other_cores:.2f} cores",
                    flush=True,
                )
                done.append(r)
    return done


FIELDS = ("rps", "msgs", "p50_ms", "p90_ms", "p99_ms", "server_cpu_us", "engine_cpu_us", "other_cores")


def medians(rounds: list[Round]) -> dict[str, dict[str, dict[str, float]]]:
    """test -> contender -> field -> median over the rounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rounds:
        out.setdefault(r.test, {}).setdefault(r.contender, {})
    for test, by_contender in out.items():
        for name in by_contender:
            mine = [r for r in rounds if r.test == test and r.contender == name]
            by_contender[name] = {f: statistics.median(getattr(r, f) for r in mine) for f in FIELDS}
    return out


def engine_socket(url: str) -> str:
    return str(Path(url.removeprefix("unix://").split("?")[0]))
