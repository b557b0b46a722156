"""What every demo's run.py needs: a `restmq serve` of its own, free ports, readiness checks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


@contextlib.contextmanager
def embedded_restmq(name: str, *args: str) -> Iterator[tuple[str, str]]:
    """`restmq serve <args>` on a free loopback port with a temporary data dir: (its URL, the data dir)."""
    with tempfile.TemporaryDirectory(prefix=f"restmq-{name}-") as data_dir:
        port = free_port()
        log = open(Path(data_dir) / "restmq.log", "wb")
        command = [sys.executable, "-m", "restmq", "serve", "--port", str(port), "--data-dir", data_dir, *args]
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not ready(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"restmq serve did not start:\n{Path(log.name).read_text()}")
                time.sleep(0.05)
            yield url, data_dir
        finally:
            server.terminate()
            server.wait(20)
            log.close()


@contextlib.contextmanager
def restmq_server(url: str | None, name: str, page_origins: Sequence[str] = ()) -> Iterator[str]:
    """`url` if given, else a server of our own (see embedded_restmq) that lets pages from `page_origins` in:
    a demo page is another origin, which RestMQ refuses unless --cors-origin names it."""
    if url:
        yield url.rstrip("/")
        return
    with embedded_restmq(name, *(arg for origin in page_origins for arg in ("--cors-origin", origin))) as (own, _):
        yield own


def page_origins(sock: socket.socket) -> list[str]:
    """The origins of a page served from `sock` (bound on 127.0.0.1), by address and by name."""
    port = sock.getsockname()[1]
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


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
