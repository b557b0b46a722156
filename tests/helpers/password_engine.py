"""A valkey-server that asks for a password (`--requirepass`), on a loopback TCP port and a unix socket.

The embedded engine never has a password; tests of what RestMQ shows about its backend need one that
has, reached the way an operator would: `redis://:<password>@127.0.0.1:<port>/0`.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from restmq.storage.engine import find_engine_binary
from tests.helpers.server import free_port
from tests.helpers.wait import wait_until


@dataclass
class PasswordEngine:
    password: str
    port: int
    socket_path: str
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            find_engine_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--requirepass", self.password,
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        log = open(self.directory / "valkey.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(self.answers, 15, 0.02, f"the password engine on port {self.port}")

    def answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"valkey-server exited {self.proc.returncode}")
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@contextlib.contextmanager
def password_engines(directory: Path, *passwords: str) -> Iterator[list[PasswordEngine]]:
    """One running engine per password, each in its own sub-directory; stopped on the way out."""
    started: list[PasswordEngine] = []
    try:
        for i, password in enumerate(passwords):
            where = directory / f"pw{i}"
            engine = PasswordEngine(password, free_port(), str(where / "valkey.sock"), where)
            engine.start()
            started.append(engine)
        yield started
    finally:
        for engine in started:
            engine.stop()
