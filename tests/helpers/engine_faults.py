"""Faults of an embedded engine a test started itself: kill -9 and restart on the same data dir (its AOF)."""

from __future__ import annotations

import os
import signal

import redis

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.topology import is_up
from tests.helpers.wait import process_gone, wait_until


def wait_aof_written(socket_path: str) -> None:
    """Wait until everything the engine acknowledged is written to its AOF file, where a kill -9 keeps it: under
    `appendfsync everysec` the engine holds writes back while a slow background fsync runs, for up to 2 s, and
    replies anyway (docs/semantics.md, Durability). A test that kills it to check what survives waits for this."""

    def written() -> bool:
        with redis.Redis(unix_socket_path=socket_path) as client:
            return int(client.info("persistence")["aof_buffer_length"]) == 0

    wait_until(written, 30, 0.01, "the engine's AOF write of what it acknowledged")


def kill_engine(engine: EmbeddedEngine) -> None:
    """kill -9, as the OOM killer or a crash would, and wait until the process is gone."""
    pid = engine.pid
    assert pid is not None, "the engine is not running"
    os.kill(pid, signal.SIGKILL)
    engine.stop()  # reaps the dead child and frees the data dir's lock, socket and pid file
    wait_until(lambda: process_gone(pid), 10, 0.01, f"engine pid {pid} to be gone")


def restart_engine(engine: EmbeddedEngine) -> None:
    """Start a killed engine again on its data dir (it loads its AOF) and wait until it answers."""
    engine.start()
    wait_until(lambda: is_up(engine), 20, 0.02, f"engine {engine.url} to answer")


def kill_and_restart(engine: EmbeddedEngine) -> None:
    kill_engine(engine)
    restart_engine(engine)
