"""The whole word-count demo in one command:

    .venv/bin/python examples/mapreduce/run.py

It starts `restmq serve` on a free port with a temporary data dir (or uses --restmq URL), publishes the
book's jobs, runs the Python workers and the reducer (threads of this process), and serves the page whose
JavaScript is a browser worker. Open it in one or more tabs: browsers and Python share the jobs. When every
job is in, the merged table is compared with a direct count of the book.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mapper
import reducer
import uvicorn
import worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from wordcount import JOBS, RESULTS, book, count

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/launch.py
from launch import listening, page_origins, restmq_server

HERE = Path(__file__).resolve().parent


class Demo:
    """One run: the direct count to compare with, and the reducer's progress."""

    def __init__(self, url: str, text: str, lines: int) -> None:
        self.url = url
        self.run_id = os.urandom(4).hex()
        self.direct = count(text)
        self.started = time.monotonic()
        self.jobs = mapper.run(url, text, self.run_id, lines)
        self.reducer = reducer.Reducer(self.run_id, self.jobs)
        self.elapsed: float | None = None

    def status(self, full: bool = False) -> dict[str, Any]:
        finished = self.reducer.finished.is_set()
        if finished and self.elapsed is None:
            self.elapsed = round(time.monotonic() - self.started, 2)
        total = self.reducer.total
        answer: dict[str, Any] = {
            "restmq": self.url,
            "jobs_queue": JOBS,
            "results_queue": RESULTS,
            "run": self.run_id,
            "jobs": self.jobs,
            "done": self.reducer.done,
            "workers": dict(self.reducer.by_worker),
            "finished": finished,
            "elapsed": self.elapsed,
            "total_words": sum(total.values()),
            "distinct": len(total),
            "top": total.most_common(25),
            "direct_total_words": sum(self.direct.values()),
            "equals_direct_count": (total == self.direct) if finished else None,
        }
        if full:
            answer["counts"] = dict(total)
        return answer


def page(demo: Demo) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(HERE / "index.html")

    async def status(request: Request) -> Response:
        return JSONResponse(demo.status(full="full" in request.query_params))

    return Starlette(routes=[Route("/", index), Route("/status", status)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restmq", help="use this RestMQ server instead of starting one")
    parser.add_argument("--port", type=int, default=0, help="port of the page (default: a free one)")
    parser.add_argument("--python-workers", type=int, default=1, help="Python workers (0: browsers only)")
    parser.add_argument("--work-delay", type=float, default=0.2, help="seconds of pretend work per job in Python")
    parser.add_argument("--lines", type=int, default=100, help="lines of the book per job")
    parser.add_argument("--exit-when-done", action="store_true", help="print the result as JSON and exit")
    args = parser.parse_args()
    # uvicorn stops gracefully on SIGTERM and then raises it again: exit through the `finally` blocks, which
    # stop the threads and the RestMQ server, instead of dying at once.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with listening(args.port) as sock, restmq_server(args.restmq, "mapreduce", page_origins(sock)) as url:
        demo = Demo(url, book(), args.lines)
        stop = threading.Event()
        threads = [
            threading.Thread(target=reducer.run, args=(url, demo.reducer, threading.Event()), daemon=True),
            *(
                threading.Thread(target=worker.run, args=(url, stop, f"python-{i + 1}", args.work_delay), daemon=True)
                for i in range(args.python_workers)
            ),
        ]
        for thread in threads:
            thread.start()
        server = uvicorn.Server(uvicorn.Config(page(demo), log_level="warning"))
        if args.exit_when_done:

            def stop_when_finished() -> None:
                demo.reducer.finished.wait()
                server.should_exit = True

            threading.Thread(target=stop_when_finished, daemon=True).start()
        try:
            sock.listen(128)
            print(f"RestMQ and its dashboard: {url}/", flush=True)
            print(f"{demo.jobs} jobs of {args.lines} lines published (run {demo.run_id})", flush=True)
            print(f"word-count page: http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
            server.run(sockets=[sock])
        finally:
            stop.set()
        if args.exit_when_done:
            print(json.dumps(demo.status(full=True)), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, no traceback
        main()
