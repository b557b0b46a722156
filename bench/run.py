"""The benchmark suite: RestMQ against a bare Starlette + redis app, the engine's own rate
(redis-benchmark) and nginx + nchan, every contender started here on loopback, in one run.

    .venv/bin/python bench/run.py           # full run (about 10 minutes): docs/benchmarks.md + docs/benchmarks/*.png
    .venv/bin/python bench/run.py --quick   # ~1 min smoke (CI): bench/results/quick.md + bench/results/quick/*.png

Raw rounds go to bench/results/latest.json. Needs wrk and redis-benchmark (Debian: `apt-get install -y wrk
redis-tools`); nginx + nchan (`apt-get install -y nginx-light libnginx-mod-nchan`) for the nchan figures, which
are left out, and said so, when they are missing. Contenders alternate run by run (A, B, C, A, B, C ...) and each
figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dashboards
import longpoll
import nchan as nchan_server
import redis
import report
import streams
import uvloop
from common import BENCH, ROOT, STREAM_LIMITS, command_line, machine, raise_open_files_limit, restmq_serve, start_server
from http_load import Contender, EngineContender, baseline, engine_socket, measure, medians, nchan_publisher, restmq

from restmq.storage.engine import EmbeddedEngine


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~10 s smoke: 1 short round of everything, small counts")
    parser.add_argument("--rounds", type=int, help="rounds per contender and test (default 5, quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per request-rate round (default 5, quick 1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections / redis-benchmark clients")
    parser.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"), help="RestMQ's HTTP server")
    parser.add_argument("--require-nchan", action="store_true", help="fail, rather than go on, without nginx + nchan")
    parser.add_argument("--skip-streams", action="store_true", help="only the request-rate tests")
    parser.add_argument(
        "--skip-dashboards",
        action="store_true",
        help="leave out many queues with open dashboards (bench/dashboards.py)",
    )
    parser.add_argument(
        "--output", type=Path, help="markdown report (default docs/benchmarks.md, quick: bench/results)"
    )
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.duration = args.duration or (1 if args.quick else 5)
    args.warmup = 0 if args.quick else 1
    return args


def run(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    engine = EmbeddedEngine(tmp / "engine")
    stack.callback(engine.stop)
    url = engine.start()
    engine_pid = engine.pid
    assert engine_pid is not None
    db = stack.enter_context(redis.Redis.from_url(url))
    rmq = start_server(stack, "restmq", restmq_serve(url, args.server), tmp, "/ready", engine_pid)
    bare = start_server(
        stack, "baseline", [str(BENCH / "baseline_app.py"), "--redis", url], tmp, "/q/ready", engine_pid
    )
    contenders: list[Contender] = [
        restmq("restmq", rmq.port, rmq.proc.pid, engine_pid, rmq.check),
        baseline(bare.port, bare.proc.pid, engine_pid, db, bare.check),
        EngineContender(engine_socket(url), engine_pid),
    ]
    no_nchan = nchan_server.available()
    nginx = None if no_nchan else nchan_server.start_nchan(stack, tmp)
    if nginx is not None:
        contenders.append(nchan_publisher(nginx.port, nginx.pid, nginx.check))
    names = ", ".join(c.name for c in contenders)
    print(f"engine {url}; {names}; {args.rounds} round(s) of {args.duration:g} s per contender and test", flush=True)
    rounds = measure(contenders, args.rounds, args.duration, args.warmup, args.connections)
    result: dict[str, Any] = {"rounds": [asdict(r) for r in rounds], "http": medians(rounds), "nchan": no_nchan}
    if not args.skip_streams:  # on fresh servers: memory freed by the tests above would flatter idle memory
        serve = restmq_serve(url, args.server, *STREAM_LIMITS)
        fresh = start_server(stack, "restmq-streams", serve, tmp, "/ready", engine_pid)
        targets = [streams.restmq_target(fresh)]
        if nginx is not None:
            targets.append(streams.nchan_target(nchan_server.start_nchan(stack, tmp / "streams")))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result["streams"] = runner.run(streams.run_all(targets, streams.suite_args(quick=args.quick)))
            seconds = 2 if args.quick else 10
            result["longpoll"] = runner.run(longpoll.long_poll(targets[0], 100, 1000, seconds))
    if not args.skip_dashboards:  # its own engine: thousands of queues would weigh on nothing else
        quiet = EmbeddedEngine(tmp / "dashboards-engine")
        stack.callback(quiet.stop)
        quiet_url = quiet.start()
        assert quiet.pid is not None
        watched = start_server(
            stack, "restmq-dashboards", restmq_serve(quiet_url, args.server), tmp, "/ready", quiet.pid
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result["dashboards"] = runner.run(dashboards.run(watched, **dashboards.settings(args.quick)))
    return result


def main() -> int:
    args = parse_args()
    missing = [
        f"{tool} (Debian: apt-get install -y {package})"
        for tool, package in (("wrk", "wrk"), ("redis-benchmark", "redis-tools"))
        if shutil.which(tool) is None
    ]
    if args.require_nchan and nchan_server.available():
        missing.append(str(nchan_server.available()))
    if missing:
        print(f"bench/run.py needs {', '.join(missing)}", file=sys.stderr)
        return 2
    output: Path = args.output or (BENCH / "results/quick.md" if args.quick else ROOT / "docs/benchmarks.md")
    charts = output.parent / output.stem  # docs/benchmarks.md -> docs/benchmarks/*.png
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks below run
    raise_open_files_limit()  # before the servers start: they inherit it
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restmq-bench-")))
        result = run(args, tmp, stack)
    info, command = machine(), command_line("bench/run.py")
    result.update(command=command, machine=info, settings={k: str(v) for k, v in vars(args).items()})
    pictures = report.charts_of(result, charts)
    kept = report.standalone_sections(output.read_text() if output.exists() else "")
    text = report.markdown(result, args, pictures, output.parent, kept)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    raw = BENCH / "results/latest.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\n{report.targets_table(report.targets(result))}\n")
    print(f"wrote {os.path.relpath(output)}, {os.path.relpath(raw)} and charts in {os.path.relpath(charts)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every process the benchmark started has been stopped)")
