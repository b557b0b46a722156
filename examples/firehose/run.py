"""The whole firehose demo in one command:

    .venv/bin/python examples/firehose/run.py

It starts `restmq serve` on a free port with a temporary data dir (or uses --restmq URL), the post
generator and the filter worker (threads of this process), and the page, then prints the page's URL.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

import generator
import uvicorn
import worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/launch.py
from launch import listening, page_origins, restmq_server

HERE = Path(__file__).resolve().parent


def page(config: dict[str, str]) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(HERE / "index.html")

    async def settings(request: Request) -> Response:
        return JSONResponse(config)

    return Starlette(routes=[Route("/", index), Route("/config.json", settings)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restmq", help="use this RestMQ server instead of starting one")
    parser.add_argument("--port", type=int, default=0, help="port of the page (default: a free one)")
    parser.add_argument("--rate", type=float, default=20, help="posts per second")
    parser.add_argument("--query", default=worker.DEFAULT_QUERY, help='e.g. "#python #redis lang:en"')
    args = parser.parse_args()
    # uvicorn stops gracefully on SIGTERM and then raises it again: exit through the `finally` blocks, which
    # stop the threads and the RestMQ server, instead of dying at once.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with listening(args.port) as sock, restmq_server(args.restmq, "firehose", page_origins(sock)) as url:
        stop = threading.Event()
        threads = [
            threading.Thread(target=generator.run, args=(url, args.rate, stop), name="generator"),
            threading.Thread(target=worker.run, args=(url, worker.Query.parse(args.query), stop), name="worker"),
        ]
        for thread in threads:
            thread.start()
        app = page({"restmq": url, "queue": worker.FILTERED, "query": args.query})
        try:
            sock.listen(128)
            print(f"RestMQ and its dashboard: {url}/", flush=True)
            print(f"firehose page: http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, no traceback
        main()
