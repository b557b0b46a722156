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
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import analytics
import httpx
import uvicorn
from app import create_app


@contextlib.contextmanager
def restmq_server(url: str | None, valkey: str | None) -> Iterator[tuple[str, str]]:
    """(`url`, `valkey`) if given, else `restmq serve` on a free loopback port with a temporary data dir, and
    the unix socket of its embedded engine."""
    if url or valkey:
        if not (url and valkey):
            raise SystemExit("give both --restmq and --valkey (the backend that server uses), or neither")
        yield url.rstrip("/"), valkey
        return
    with tempfile.TemporaryDirectory(prefix="restmq-shortener-") as data_dir:
        port = free_port()
        log = open(Path(data_dir) / "restmq.log", "wb")
        command = [sys.executable, "-m", "restmq", "serve", "--port", str(port), "--data-dir", data_dir]
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not ready(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"restmq serve did not start:\n{Path(log.name).read_text()}")
                time.sleep(0.05)
            yield url, f"unix://{data_dir}/valkey.sock"  # the engine restmq serve started there
        finally:
            server.terminate()
            server.wait(20)
            log.close()


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with listening(0) as sock:
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    try:
        yield sock
    finally:
        sock.close()


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
