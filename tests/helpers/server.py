"""Real servers for tests: RestMQ in-process on uvicorn, or `restmq serve` as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from restmq.config import Limits, Settings
from restmq.core.dispatch import StreamConfig
from restmq.web.app import create_app
from tests.helpers.wait import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def run_app(
    redis_url: str | None = None,
    *,
    limits: Limits | None = None,
    redis_urls: Sequence[str] = (),
    redis_cluster: str | None = None,
    stream_config: StreamConfig | None = None,
    **overrides: Any,  # Settings fields
) -> AsyncIterator[str]:
    """RestMQ on uvicorn in this event loop, on a free loopback port; yields its base URL.

    The backend is one node (`redis_url`), a ring (`redis_urls`, in ring order) or a Redis Cluster
    (`redis_cluster`, a seed URL)."""
    urls = tuple(redis_urls) or ((redis_url,) if redis_url else ())
    if not urls and not redis_cluster:
        raise ValueError("run_app needs redis_url, redis_urls or redis_cluster")
    base = Settings(redis=urls, redis_cluster=redis_cluster, limits=limits or Limits())
    settings = replace(base, **overrides)
    async with serve_app(create_app(settings), stream_config=stream_config) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_app(app: Starlette, *, stream_config: StreamConfig | None = None) -> AsyncIterator[str]:
    """`app` (from create_app) on uvicorn in this event loop, on a free loopback port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="restmq.cli.uvicorn_ws:BatchingWebSocketProtocol",  # as `restmq serve`
        proxy_headers=False,  # as `restmq serve`: the app reads them, from --forwarded-allow-ips only
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        if stream_config is not None:  # e.g. a small per-connection buffer; read as each consumer connects
            app.state.streams.config = stream_config
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class ServeProcess:
    """`restmq serve` in a subprocess, ready once /ready answers.

    `prefix` runs it through another command (e.g. nsenter into a network namespace); `probe(url)`
    then replaces the readiness check, which must run where the server can be reached. `url_host` is
    the address the test reaches it on; `open_files` lowers its RLIMIT_NOFILE (and its workers') to
    make descriptor exhaustion cheap to reach."""

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        prefix: Sequence[str] = (),
        probe: Callable[[str], bool] | None = None,
        url_host: str = "127.0.0.1",
        open_files: int | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://{f'[{url_host}]' if ':' in url_host else url_host}:{port}"
        self.log_path = log_path
        self._probe = probe
        self._log = open(log_path, "wb")

        def limit_open_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "restmq", "serve", "--port", str(port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=limit_open_files if open_files is not None else None,
        )

    def wait_ready(self, timeout: float = 20.0) -> ServeProcess:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"restmq serve exited {self.proc.returncode}:\n{self.log()}")
            return self.answers()

        wait_until(up, timeout, 0.02, "restmq serve to answer /ready")
        return self

    def answers(self) -> bool:
        """Whether /ready answers 200 now."""
        if self._probe is not None:
            return self._probe(self.url)
        try:
            return httpx.get(self.url + "/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_outcome(self, timeout: float = 30.0) -> int | None:
        """Wait until the server either exits (its exit code) or answers /ready (None; it is stopped then)."""
        wait_until(
            lambda: self.proc.poll() is not None or self.answers(), timeout, 0.05, "restmq serve to exit or answer"
        )
        code = self.proc.poll()
        if code is None:
            self.stop()
        else:
            self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._log.close()


@contextlib.contextmanager
def serve(
    args: Sequence[str], tmp_path: Path, name: str = "serve", *, open_files: int | None = None
) -> Iterator[ServeProcess]:
    process = ServeProcess(args, free_port(), tmp_path / f"{name}.log", open_files=open_files)
    try:
        yield process.wait_ready()
    finally:
        process.stop()
