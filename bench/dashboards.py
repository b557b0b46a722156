"""Many queues and open dashboards: how `GET /health` answers while dashboards watch a server with many queues.

    .venv/bin/python bench/dashboards.py            # 20,000 queues, 20 dashboards, 15 s: docs/benchmarks.md's section
    .venv/bin/python bench/dashboards.py --quick    # 2,000 queues, 5 dashboards, 3 s (bench/run.py --quick runs this)

Starts its own embedded engine and one `python -m restmq serve` (one worker), then:

1. creates the queues, one message each (`POST /q/dash-<n>` over 16 keep-alive connections);
2. samples `GET /health` (a new connection each time, as a load balancer's probe does) 20 times a second for a
   third of the sampling time with no dashboard open: the reference;
3. opens the dashboards: `GET /stats/stream` with `Accept: text/event-stream` and no paging parameters (the
   default page, --max-page queues), each read to the end of every event as a browser's EventSource does;
4. samples `GET /health` again for the whole sampling time, and the CPU of the server and the engine meanwhile.

The target (issue 13): /health p99 under 100 ms with 20,000 queues and 20 open dashboards. Run alone, the full
run replaces its section of docs/benchmarks.md (between the `dashboards` markers) and writes
bench/results/dashboards.json; bench/run.py runs it as part of the suite and puts the same section in its report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from common import BENCH, ROOT, Server, command_line, machine, restmq_serve, start_server
from streams import Target, close, cores, cpu_now, pct, read_response, restmq_target

from restmq.storage.engine import EmbeddedEngine

TARGET_P99_MS = 100.0
BUSY = 0.2  # cores used by other processes above which the section says the figures are noisy
PROBES_PER_SECOND = 20
FIRST_EVENT_WAIT = 60.0  # seconds the dashboards get for their first event before /health is probed anyway
CREATORS = 16  # keep-alive connections creating the queues
BEGIN, END = "<!-- dashboards:begin -->", "<!-- dashboards:end -->"


def settings(quick: bool) -> dict[str, int]:
    return (
        {"queues": 2_000, "dashboards": 5, "seconds": 3}
        if quick
        else {"queues": 20_000, "dashboards": 20, "seconds": 15}
    )


async def create_queues(target: Target, n: int) -> float:
    """One message in each of `n` queues; returns the seconds it took."""
    names = iter(range(n))
    started = time.perf_counter()

    async def creator() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        try:
            for i in names:
                writer.write(target.publish(f"dash-{i:06}", b"x"))
                status, reply = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"POST /q/dash-{i:06}: {status} {reply[:200]!r}")
        finally:
            await close(writer)

    await asyncio.gather(*(creator() for _ in range(CREATORS)))
    return time.perf_counter() - started


async def first_events(watchers: list[Dashboard]) -> None:
    while not all(w.first.is_set() for w in watchers):
        pending = [w for w in watchers if not w.first.is_set()]
        first = asyncio.create_task(pending[0].first.wait())
        await asyncio.wait([first, *(w.task for w in watchers if w.task)], return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        for watcher in watchers:
            if watcher.task is not None and watcher.task.done():
                watcher.task.result()
                raise RuntimeError("a dashboard's stream ended")


class Dashboard:
    """One open /stats/stream, read to the end of every event."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.first = asyncio.Event()
        self.queues_shown = 0
        self.task: asyncio.Task[None] | None = None

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 2**20)
        try:
            writer.write(b"GET /stats/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"/stats/stream: {head[:200]!r}")
            chunked = b"chunked" in head.lower()
            pending = b""
            while True:
                if chunked:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        return
                    pending += (await reader.readexactly(size + 2))[:-2]
                else:
                    chunk = await reader.read(2**16)
                    if not chunk:
                        return
                    pending += chunk
                *events, pending = pending.split(b"\n\n")
                for event in events:
                    if event.startswith(b"data: "):
                        self.events += 1
                        self.bytes += len(event)
                        if not self.first.is_set():
                            self.queues_shown = json.loads(event[6:])["count"]
                            self.first.set()
        finally:
            await close(writer)


async def probe_health(port: int, seconds: float) -> tuple[list[float], int]:
    """GET /health on a new connection, PROBES_PER_SECOND times a second (or as fast as answers come when slower);
    the latencies in ms, and how many probes failed."""
    latencies: list[float] = []
    failed = 0
    start = time.perf_counter()
    i = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + i / PROBES_PER_SECOND
        if due > now:
            await asyncio.sleep(due - now)  # the probing schedule itself, not a wait for a condition
        i += 1
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(30):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status, _ = await read_response(reader)
                await close(writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            failed += 1
            continue
        if status != 200:
            failed += 1
            continue
        latencies.append((time.perf_counter() - sent) * 1000)
    return latencies, failed


def _summary(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(pct(ordered, 50), 2),
        "p99_ms": round(pct(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2),
    }


async def run(server: Server, queues: int, dashboards: int, seconds: float) -> dict[str, Any]:
    """The benchmark against a running server whose backend holds no queue yet."""
    target = restmq_target(server)
    created = await create_queues(target, queues)
    print(f"  dashboards: {queues:,} queues created in {created:.1f} s", flush=True)
    idle, idle_failed = await probe_health(server.port, max(1.0, seconds / 3))
    watchers = [Dashboard() for _ in range(dashboards)]
    for watcher in watchers:
        watcher.task = asyncio.create_task(watcher.run(server.port))
    try:
        opened = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # every dashboard has its first event (one that fails raises here)
            async with asyncio.timeout(FIRST_EVENT_WAIT):
                await first_events(watchers)
        first_event_s = time.perf_counter() - opened
        events_before = sum(w.events for w in watchers)
        before = cpu_now(target)
        t0 = time.perf_counter()
        loaded, failed = await probe_health(server.port, seconds)
        wall = time.perf_counter() - t0
        used = cores(before, cpu_now(target), wall)
        events = sum(w.events for w in watchers) - events_before
        target.check()
    finally:
        for watcher in watchers:
            if watcher.task is not None:
                watcher.task.cancel()
        await asyncio.gather(*(w.task for w in watchers if w.task), return_exceptions=True)
    result = {
        "queues": queues,
        "dashboards": dashboards,
        "seconds": seconds,
        "create_seconds": round(created, 1),
        "queues_per_event": max((w.queues_shown for w in watchers), default=0),
        "first_events_s": round(first_event_s, 2),
        "dashboards_live": sum(w.first.is_set() for w in watchers),
        "idle": {**_summary(idle), "probes": len(idle), "failed": idle_failed},
        "loaded": {**_summary(loaded), "probes": len(loaded), "failed": failed},
        "events_per_dashboard_per_s": round(events / dashboards / wall, 2) if dashboards else 0,
        "event_kib": round(sum(w.bytes for w in watchers) / max(1, sum(w.events for w in watchers)) / 1024, 1),
        **used,
    }
    p99 = result["loaded"]["p99_ms"]
    result["met"] = p99 is not None and p99 < TARGET_P99_MS and not failed
    print(f"  dashboards: {json.dumps(result)}", flush=True)
    return result


def section(r: dict[str, Any] | None, command: str | None = None, info: dict[str, str] | None = None) -> str:
    """The markdown section of docs/benchmarks.md, between its markers (command and machine when run alone)."""
    if not r:
        return f"{BEGIN}\n### Many queues, open dashboards\n\n(not run)\n{END}"
    met = "yes" if r["met"] else "**no**"
    idle, loaded = r["idle"], r["loaded"]
    cpu = " / ".join(str(r[f"{who}_cores"]) for who in ("server", "engine", "client", "others"))
    busy = ""
    if r["others_cores"] > BUSY:
        busy = (
            f"\n**Other processes used {r['others_cores']} of the machine's cores meanwhile: the figures are noisy.**\n"
        )
    alone = ""
    if command and info:
        facts = "\n".join(f"- {k}: {v}" for k, v in info.items())
        alone = f"\nMeasured alone on {info['date']} with\n\n    {command}\n\n{facts}\n"
    return f"""{BEGIN}
### Many queues, open dashboards

| metric | restmq |
|---|--:|
| load | {r["queues"]:,} queues, {r["dashboards"]} open dashboards (`/stats/stream`, default page), {r["seconds"]:g} s |
| queues per dashboard event (the default page) | {r["queues_per_event"]:,} ({r["event_kib"]} KiB) |
| dashboards with their first event, and after | {r["dashboards_live"]} of {r["dashboards"]}, {r["first_events_s"]} s |
| events per dashboard per second | {r["events_per_dashboard_per_s"]} |
| `/health` p50 / p99 / max, no dashboard open | {idle["p50_ms"]} / {idle["p99_ms"]} / {idle["max_ms"]} ms |
| `/health` p50 / p99 / max, dashboards open | {loaded["p50_ms"]} / {loaded["p99_ms"]} / {loaded["max_ms"]} ms |
| `/health` probes answered / failed | {loaded["probes"]:,} / {loaded["failed"]} |
| target: `/health` p99 < {TARGET_P99_MS:g} ms | {met} |
| CPU cores server / engine / client / others | {cpu} |

`bench/dashboards.py`: the queues are created first (one message each, {r["create_seconds"]} s), then `/health` is
probed {PROBES_PER_SECOND} times a second on a new connection each time, with no dashboard and then with the
dashboards open. Every dashboard showing the same page shares one statistics snapshot per second and process, so
the server reads one page of statistics a second however many dashboards are open.
{busy}{alone}{END}"""


def write_section(path: Path, text: str) -> None:
    """Replace the section between the markers in `path` (or put it before "## Charts", or at the end)."""
    doc = path.read_text() if path.exists() else ""
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    elif "\n## Charts" in doc:
        at = doc.index("\n## Charts")
        doc = doc[:at] + "\n" + text + "\n" + doc[at:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 queues, 5 dashboards, 3 s")
    parser.add_argument("--queues", type=int, help="queues to create (default 20,000; quick 2,000)")
    parser.add_argument("--dashboards", type=int, help="open dashboards (default 20; quick 5)")
    parser.add_argument("--seconds", type=float, help="seconds of /health samples with dashboards open (15; quick 3)")
    parser.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"), help="RestMQ's HTTP server")
    parser.add_argument(
        "--output", type=Path, help="markdown file whose section to replace (default docs/benchmarks.md; quick: none)"
    )
    args = parser.parse_args()
    for name, value in settings(args.quick).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks below run
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-dashboards-")))
        engine = EmbeddedEngine(tmp / "engine")
        stack.callback(engine.stop)
        url = engine.start()
        assert engine.pid is not None
        server = start_server(stack, "restmq", restmq_serve(url, args.server), tmp, "/ready", engine.pid)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(run(server, args.queues, args.dashboards, args.seconds))
    command, info = command_line("bench/dashboards.py"), machine()
    raw = BENCH / "results/dashboards.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"command": command, "machine": info, "result": result}, indent=2) + "\n")
    text = section(result, command, info)
    print(f"\n{text}\n")
    output = args.output or (None if args.quick else ROOT / "docs/benchmarks.md")
    if output is not None:
        write_section(output, text)
        print(f"wrote {os.path.relpath(output)} (its dashboards section) and {os.path.relpath(raw)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
