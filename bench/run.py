"""RestMQ against a minimal Starlette + redis.asyncio app, on one shared embedded engine, load from wrk.

    .venv/bin/python bench/run.py           # full run (a few minutes): writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick   # ~10 s smoke (CI): writes bench/results/quick.md

Both write the raw rounds to bench/results/latest.json. Needs wrk (Debian: apt-get install -y wrk).
Contenders alternate run by run (A, B, A, B ...) and each figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from baseline_app import key_of

from restmq.storage.engine import EmbeddedEngine, find_engine_binary

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VALUE = "m" * 100  # every message is 100 bytes, as in the wrk scripts
GET_CEILING = 40_000  # req/s above any one worker: GET queues are topped up to duration x this before each round
FILL_CHUNK = 1_000  # messages per pre-fill request / command
RATIO_TARGET = 0.8
BATCH_TARGET = 100_000  # messages/s
BUSY = 0.2  # cores used by other processes during the rounds above which the report warns
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Test:
    name: str
    label: str
    script: str
    messages: int  # per request


TESTS = (
    Test("post", "POST 1 msg (form)", "post.lua", 1),
    Test("get", "GET 1 msg", "get.lua", 1),
    Test("batch", "POST 100 msgs (JSON)", "batch.lua", 100),
)


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


@dataclass(frozen=True)
class Row:
    contender: str
    test: str
    rps: float
    msgs: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float
    engine_cpu_us: float
    ratio: float | None
    target: str
    met: bool | None


# -- processes --------------------------------------------------------------------------------


def _die_with_parent() -> None:
    _libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG: no orphan servers if we are SIGKILLed


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    engine_pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.proc.returncode}; end of its log:\n{_tail(self.log)}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time every process on the machine spent so far (user, nice, system, irq, softirq, steal)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf("SC_CLK_TCK")


def usage(pids: tuple[int, ...]) -> list[float]:
    """CPU seconds of each pid, of this process with its reaped children (wrk), of the machine; wall time."""
    mine = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    local = sum(r.ru_utime + r.ru_stime for r in mine)
    return [*(cpu_seconds(pid) for pid in pids), local, busy_seconds(), time.monotonic()]


def start_server(
    stack: contextlib.ExitStack, name: str, args: list[str], tmp: Path, ready: str, engine_pid: int
) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches only us; the finally below stops the servers
            preexec_fn=_die_with_parent,
        )
    server = Server(name, port, proc, log, engine_pid)
    stack.callback(server.stop)
    deadline = time.monotonic() + 30
    while True:
        server.check()
        try:
            with urllib.request.urlopen(server.url(ready), timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer within 30 s; end of its log:\n{_tail(log)}") from None
            time.sleep(0.05)


# -- the contenders' queues -------------------------------------------------------------------


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        data: bytes = response.read()
        return data


class RestMQ:
    def __init__(self, server: Server) -> None:
        self.server = server

    def depth(self, queue: str) -> int:
        return int(json.loads(http("GET", self.server.url(f"/stats/{queue}")))["length"])

    def fill(self, queue: str, n: int) -> None:
        for start in range(0, n, FILL_CHUNK):
            body = json.dumps([VALUE] * min(FILL_CHUNK, n - start)).encode()
            http("POST", self.server.url(f"/q/{queue}"), body)

    def purge(self, queue: str) -> None:
        http("DELETE", self.server.url(f"/q/{queue}"))


class Baseline:
    def __init__(self, server: Server, db: redis.Redis) -> None:
        self.server, self.db = server, db

    def depth(self, queue: str) -> int:
        return int(self.db.llen(key_of(queue)))

    def fill(self, queue: str, n: int) -> None:
        with self.db.pipeline(transaction=False) as pipe:
            for start in range(0, n, FILL_CHUNK):
                pipe.lpush(key_of(queue), *[VALUE] * min(FILL_CHUNK, n - start))
            pipe.execute()

    def purge(self, queue: str) -> None:
        self.db.delete(key_of(queue))


Contender = RestMQ | Baseline


# -- measuring --------------------------------------------------------------------------------


def wrk(server: Server, test: Test, seconds: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "5s"]
    cmd += ["-s", str(BENCH / test.script), server.url(f"/q/bench-{test.name}")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    server.check()
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}{out.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    if any(result["errors"].values()):
        raise RuntimeError(f"{server.name} {test.name}: wrk counted errors {result['errors']}\n{out.stdout}")
    return result


def prepare(contender: Contender, test: Test, seconds: int) -> None:
    queue = f"bench-{test.name}"
    if test.name == "get":
        missing = seconds * GET_CEILING - contender.depth(queue)
        if missing > 0:
            contender.fill(queue, missing)
    else:
        contender.purge(queue)  # every add round starts from an empty queue (and memory stays bounded)


def run_round(contender: Contender, test: Test, number: int, args: argparse.Namespace) -> Round:
    prepare(contender, test, args.duration)
    pids = (contender.server.proc.pid, contender.server.engine_pid)
    before = usage(pids)
    raw = wrk(contender.server, test, args.duration, args)
    server, engine, local, busy, wall = (a - b for a, b in zip(usage(pids), before, strict=True))
    if test.name == "get" and contender.depth(f"bench-{test.name}") == 0:  # a 204 is no error to wrk
        raise RuntimeError(f"{contender.server.name}: the GET queue ran empty; raise GET_CEILING")
    seconds = raw["duration_us"] / 1e6
    rps = raw["requests"] / seconds
    latency = {f"{k}_ms": raw["latency_us"][k] / 1000 for k in ("p50", "p90", "p99", "max")}
    return Round(
        contender.server.name,
        test.name,
        number,
        raw["requests"],
        seconds,
        rps,
        rps * test.messages,
        **latency,
        server_cpu_us=1e6 * server / raw["requests"],
        engine_cpu_us=1e6 * engine / raw["requests"],
        other_cores=max(0.0, busy - server - engine - local) / wall,
    )


def measure(contenders: list[Contender], args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    for test in TESTS:
        for contender in contenders if args.warmup else ():
            prepare(contender, test, args.warmup)
            wrk(contender.server, test, args.warmup, args)
        for number in range(1, args.rounds + 1):
            for contender in contenders:  # A, B, A, B ...: drift hits both alike
                r = run_round(contender, test, number, args)
                print(
                    f"  {test.name:5} round {number} {r.contender:8} {r.rps:9,.0f} req/s {r.msgs:10,.0f} msg/s"
                    f"  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
                    f"  CPU {r.server_cpu_us:4.0f} + {r.engine_cpu_us:4.0f} µs/req, others {r.other_cores:.2f} cores",
                    flush=True,
                )
                rounds.append(r)
    return rounds


FIELDS = ("rps", "msgs", "p50_ms", "p99_ms", "server_cpu_us", "engine_cpu_us")


def summarize(rounds: list[Round]) -> list[Row]:
    rows: list[Row] = []
    for test in TESTS:
        med: dict[str, dict[str, float]] = {}
        for name in ("restmq", "baseline"):
            mine = [r for r in rounds if r.test == test.name and r.contender == name]
            med[name] = {f: statistics.median(getattr(r, f) for r in mine) for f in FIELDS}
        ratio = med["restmq"]["rps"] / med["baseline"]["rps"]
        if test.name == "batch":
            target, met = f"≥ {BATCH_TARGET:,} msg/s", med["restmq"]["msgs"] >= BATCH_TARGET
        else:
            target, met = f"≥ {RATIO_TARGET}x baseline", ratio >= RATIO_TARGET
        for name in ("restmq", "baseline"):
            m = med[name]
            mine_ratio, mine_target, mine_met = (ratio, target, met) if name == "restmq" else (None, "", None)
            rows.append(Row(name, test.label, **m, ratio=mine_ratio, target=mine_target, met=mine_met))
    return rows


# -- reporting --------------------------------------------------------------------------------


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return ((out.stdout or out.stderr).splitlines() or ["unknown"])[0].split(" sha=")[0].split(" Copyright")[0].strip()


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo.splitlines() if x.startswith("model name")), "unknown")
    packages = ("starlette", "uvicorn", "redis", "hiredis", "uvloop", "httptools", "orjson")
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "engine": _version([find_engine_binary(), "--version"]),
        "wrk": _version(["wrk", "-v"]),
        "packages": ", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages),
        "restmq revision": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        + " (plus any local edits)",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def table(rows: list[Row]) -> str:
    lines = [
        "| contender | test | req/s | msg/s | p50 ms | p99 ms | CPU µs/req server + engine | ratio | target | met? |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.3f}x" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.contender} | {r.test} | {r.rps:,.0f} | {r.msgs:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.server_cpu_us:.0f} + {r.engine_cpu_us:.0f} | {ratio} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def contention(rounds: list[Round]) -> str:
    others = statistics.median(r.other_cores for r in rounds)
    if others <= BUSY:
        return ""
    return f"Other processes used {others:.2f} cores (median) during the rounds: req/s are low and noisy."


def markdown(rows: list[Row], rounds: list[Round], info: dict[str, str], command: str, args: argparse.Namespace) -> str:
    per_round = [
        "| test | round | contender | req/s | msg/s | p50 ms | p99 ms | CPU µs/req server + engine | others' CPU |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    per_round += [
        f"| {r.test} | {r.round} | {r.contender} | {r.rps:,.0f} | {r.msgs:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {r.server_cpu_us:.0f} + {r.engine_cpu_us:.0f} | {r.other_cores:.2f} cores |"
        for r in rounds
    ]
    busy = f"\n**{contention(rounds)}**\n" if contention(rounds) else ""
    warmup = "A 1 s warm-up per contender and test is not counted." if args.warmup else "No warm-up."
    return f"""# Benchmarks

Generated by `bench/run.py` on {info["date"]}; run it again rather than editing this file.

## Results

{table(rows)}
{busy}
Every figure is the median of {args.rounds} round(s) of {args.duration} s. Ratio: RestMQ req/s ÷ baseline req/s.
Targets: RestMQ at least {RATIO_TARGET}x the minimal app on single POST and single GET, and a batch add of
at least {BATCH_TARGET:,} messages/s.

## Command

    {command}

## Machine

{chr(10).join(f"- {k}: {v}" for k, v in info.items())}

## Method

- One embedded engine (Valkey on a unix socket, AOF `appendfsync everysec`, in a temporary directory) serves both
  contenders; they use different keys.
- **restmq**: `python -m restmq serve --redis <engine> --port <free>`, one worker.
- **baseline**: `bench/baseline_app.py`, bare Starlette + redis.asyncio (hiredis) on uvicorn with uvloop and
  httptools, one worker: `POST /q/{{queue}}` LPUSHes the form field `value` (or a JSON array in one LPUSH), `GET`
  RPOPs.
- Load: `wrk -t{args.threads} -c{args.connections} -d{args.duration}s` on loopback with `bench/post.lua` (form body
  `value=<100 bytes>`), `bench/get.lua` and `bench/batch.lua` (a JSON array of 100 messages of 100 bytes).
  Any wrk error (connect, read, write, timeout, status ≥ 400) aborts the run. {warmup}
- CPU µs/req: CPU time (user + system, from `/proc/<pid>/stat`) the server process and the engine spent per
  request during a round: it depends less than req/s on what else runs on the machine. "Others' CPU" (per
  round) is what processes outside the benchmark used meanwhile: contention that lowers req/s.
- Contenders alternate run by run (restmq, baseline, restmq, baseline, ...), so machine drift hits both alike.
- Add tests start each round from an empty queue. GET queues are topped up to {GET_CEILING:,} × duration messages
  before each round (batch POSTs for RestMQ, pipelined LPUSH for the baseline) and checked to be non-empty after it:
  no request got a 204.
- The machine has {os.cpu_count()} cores shared by wrk, the server under test and the engine: the load generator
  competes with the server, so absolute numbers are lower than on separate machines; compare the ratios and the
  CPU per request rather than absolute req/s.
- Latencies are measured at saturation (closed loop, {args.connections} connections), so they are mostly queueing
  time: about connections ÷ req/s.

## Rounds

{chr(10).join(per_round)}
"""


def command_line() -> str:
    exe = Path(sys.executable)
    shown = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else str(exe)
    return " ".join([shown, "bench/run.py", *sys.argv[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~10 s smoke: 1 round of 1 s, no warm-up")
    parser.add_argument("--rounds", type=int, help="rounds per contender and test (default 5, quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per round (default 5, quick 1)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has few cores)")
    parser.add_argument(
        "--output", type=Path, help="markdown report (default docs/benchmarks.md, quick: bench/results)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.duration = args.duration or (1 if args.quick else 5)
    args.warmup = 0 if args.quick else 1
    output: Path = args.output or (BENCH / "results/quick.md" if args.quick else ROOT / "docs/benchmarks.md")
    if shutil.which("wrk") is None:
        print(
            "bench/run.py needs wrk: install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`.",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks below run
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-bench-")))
        engine = EmbeddedEngine(tmp / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        engine_pid = engine.pid
        assert engine_pid is not None
        db = stack.enter_context(redis.Redis.from_url(url))
        restmq = start_server(
            stack,
            "restmq",
            ["-m", "restmq", "serve", "--redis", url, "--log-level", "warning"],
            tmp,
            "/ready",
            engine_pid,
        )
        baseline = start_server(
            stack, "baseline", [str(BENCH / "baseline_app.py"), "--redis", url], tmp, "/q/ready", engine_pid
        )
        print(
            f"engine {url}, restmq :{restmq.port}, baseline :{baseline.port}; "
            f"{args.rounds} round(s) of {args.duration} s per contender and test",
            flush=True,
        )
        rounds = measure([RestMQ(restmq), Baseline(baseline, db)], args)
    rows = summarize(rounds)
    info, command = machine(), command_line()
    print(f"\n{table(rows)}\n\n{contention(rounds)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown(rows, rounds, info, command, args))
    raw = BENCH / "results/latest.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    data = {
        "command": command,
        "machine": info,
        "settings": settings,
        "summary": [asdict(r) for r in rows],
        "rounds": [asdict(r) for r in rounds],
    }
    raw.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {os.path.relpath(output)} and {os.path.relpath(raw)}")
    return 1 if args.check and not all(r.met for r in rows if r.met is not None) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
