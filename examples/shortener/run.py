"""The whole shortener demo in one command:

    .venv/bin/python examples/shortener/run.py

It starts `restmq serve` on a free port with a temporary data dir (or uses --restmq URL with --valkey URL,
the backend that server uses), the analytics consumer (a thread of this process) and the shortener, then
prints the shortener's URL. The shortener keeps its links, and the consumer its counts, in that same Valkey
under `shortener:` keys, beside RestMQ's own.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import analytics
import uvicorn
from app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/launch.py
from launch import embedded_restmq, listening


@contextlib.contextmanager
def restmq_server(url: str | None, valkey: str | None) -> Iterator[tuple[str, str]]:
    """(`url`, `valkey`) if given, else `restmq serve` on a free loopback port with a temporary data dir, and
    the unix socket of its embedded engine."""
    if url or valkey:
        if not (url and valkey):
            raise SystemExit("give both --restmq and --valkey (the backend that server uses), or neither")
        yield url.rstrip("/"), valkey
        return
    with embedded_restmq("shortener") as (own_url, data_dir):
        yield own_url, f"unix://{data_dir}/valkey.sock"  # the engine restmq serve started there


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restmq", help="use this RestMQ server instead of starting one")
    parser.add_argument("--valkey", help="with --restmq: the Valkey/Redis URL behind it")
    parser.add_argument("--port", type=int, default=0, help="port of the shortener (default: a free one)")
    args = parser.parse_args()
    # uvicorn stops gracefully on SIGTERM and then raises it again: exit through the `finally` blocks, which
    # stop the threads and the RestMQ server, instead of dying at once.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with restmq_server(args.restmq, args.valkey) as (url, valkey):
        stop = threading.Event()
        consumer = threading.Thread(target=analytics.run, args=(url, valkey, stop), name="analytics")
        consumer.start()
        try:
            with listening(args.port) as sock:
                sock.listen(128)
                print(f"RestMQ and its dashboard: {url}/", flush=True)
                print(f"shortener: http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
                uvicorn.Server(uvicorn.Config(create_app(url, valkey), log_level="warning")).run(sockets=[sock])
        finally:
            stop.set()
            consumer.join(10)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, no traceback
        main()
