"""The embedded engine against the real valkey-server binary."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from restmq.errors import EngineError
from restmq.storage.engine import EmbeddedEngine, find_engine_binary
from tests.helpers.engine_faults import wait_aof_written
from tests.helpers.wait import process_gone, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A restmq server stand-in: starts an engine, reports its pid, then idles until killed.
HOST_SCRIPT = """
import sys, time
from restmq.storage.engine import EmbeddedEngine
engine = EmbeddedEngine(sys.argv[1], fsync=sys.argv[2])
engine.start()
print(engine.pid, flush=True)
time.sleep(600)
"""

Host = Callable[..., tuple[subprocess.Popen[str], int]]


@pytest.fixture
def spawn_host() -> Iterator[Host]:
    hosts: list[subprocess.Popen[str]] = []

    def spawn(data_dir: Path, fsync: str = "everysec") -> tuple[subprocess.Popen[str], int]:
        host = subprocess.Popen(
            [sys.executable, "-c", HOST_SCRIPT, str(data_dir), fsync], stdout=subprocess.PIPE, text=True
        )
        hosts.append(host)
        assert host.stdout is not None
        line = host.stdout.readline()
        assert line.strip().isdigit(), f"host failed to start an engine (got {line!r})"
        return host, int(line)

    yield spawn
    for host in hosts:  # the engines die with their hosts (PDEATHSIG)
        host.kill()
        host.wait()
        assert host.stdout is not None
        host.stdout.close()


def client(engine: EmbeddedEngine) -> redis.Redis:
    return redis.Redis(unix_socket_path=engine.socket_path)


def push_items(engine: EmbeddedEngine, n: int = 10_000) -> list[bytes]:
    items = [f"item-{i}".encode() for i in range(n)]
    with client(engine) as r, r.pipeline(transaction=False) as pipe:
        for item in items:
            pipe.rpush("q", item)
        pipe.execute()
    return items


def test_start_set_get_stop(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"  # parents are created
    engine = EmbeddedEngine(data)
    url = engine.start()
    assert url == engine.url == f"unix://{engine.socket_path}"
    assert engine.socket_path == str(data.resolve() / "valkey.sock")
    pid = engine.pid
    assert pid is not None
    assert (data / "valkey.pid").read_text().strip() == str(pid)
    with redis.Redis.from_url(url) as r:
        assert r.set("k", "v")
        assert r.get("k") == b"v"
    engine.stop()
    assert engine.pid is None
    assert process_gone(pid)
    assert not Path(engine.socket_path).exists()
    assert not (data / "valkey.pid").exists()
    engine.stop()  # idempotent


def test_data_survives_clean_restart(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path) as engine:
        items = push_items(engine)
    with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
        assert r.lrange("q", 0, -1) == items


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_data_survives_kill_9_of_engine_and_host(tmp_path: Path, spawn_host: Host, fsync: str) -> None:
    host, engine_pid = spawn_host(tmp_path, fsync)
    stand_in = EmbeddedEngine(tmp_path)  # same dir, same socket path; not started
    items = push_items(stand_in)
    if fsync == "everysec":  # what it acknowledged while a slow fsync held the AOF write back would die with it
        wait_aof_written(stand_in.socket_path)
    os.kill(engine_pid, signal.SIGKILL)
    wait_until(lambda: process_gone(engine_pid), what="engine death")
    host.kill()
    host.wait()
    assert (tmp_path / "valkey.pid").exists()
    assert (tmp_path / "valkey.sock").exists()
    with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
        assert r.lrange("q", 0, -1) == items


def test_second_engine_on_same_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path) as first:
        second = EmbeddedEngine(tmp_path)
        with pytest.raises(EngineError, match=rf"is in use by another restmq server \(pid {os.getpid()}\)"):
            second.start()
        assert second.pid is None
        second.stop()  # must not remove the first engine's socket or pid file
        with client(first) as r:
            assert r.ping()
    with EmbeddedEngine(tmp_path) as second, client(second) as r:  # free again once the first stopped
        assert r.ping()


def test_engine_dies_when_its_parent_is_killed(tmp_path: Path, spawn_host: Host) -> None:
    host, engine_pid = spawn_host(tmp_path)
    host.kill()
    host.wait()
    wait_until(lambda: process_gone(engine_pid), timeout=5, what="orphaned engine to exit")
    # PDEATHSIG sends SIGTERM, so the engine shut down cleanly and removed its own socket.
    wait_until(lambda: not (tmp_path / "valkey.sock").exists(), what="socket removal")


def test_restart_after_engine_kill_9_leaves_stale_files(tmp_path: Path, spawn_host: Host) -> None:
    host, engine_pid = spawn_host(tmp_path)
    os.kill(engine_pid, signal.SIGKILL)
    wait_until(lambda: process_gone(engine_pid), what="engine death")
    host.kill()
    host.wait()
    with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
        assert engine.pid != engine_pid
        assert r.ping()


def test_orphaned_engine_on_the_dir_is_terminated(tmp_path: Path) -> None:
    # An engine left running on the dir by a dead server (here started by hand, without PDEATHSIG).
    sock, pidfile = tmp_path / "valkey.sock", tmp_path / "valkey.pid"
    orphan = subprocess.Popen(
        [find_engine_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(tmp_path)]
        + ["--pidfile", str(pidfile), "--save", "", "--logfile", str(tmp_path / "orphan.log")],
    )
    try:
        wait_until(pidfile.exists, what="orphan pid file")
        with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
            assert orphan.poll() is not None
            assert r.ping()
    finally:
        orphan.kill()
        orphan.wait()


def test_stale_pid_of_an_unrelated_process_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "valkey.pid").write_text(f"{bystander.pid}\n")
        with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
            assert r.ping()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_fsync_always(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path, fsync="always") as engine, client(engine) as r:
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}


def test_default_fsync_is_everysec(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path) as engine, client(engine) as r:
        assert r.config_get("appendfsync") == {"appendfsync": "everysec"}


def test_invalid_fsync_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="fsync must be one of"):
        EmbeddedEngine(tmp_path, fsync="no")


def test_long_data_dir_uses_short_socket_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / ("d" * 60) / ("e" * 60)
    engine = EmbeddedEngine(data)
    assert len(os.fsencode(engine.socket_path)) < 108
    assert Path(engine.socket_path).parent == Path(tempfile.gettempdir()).resolve()
    assert EmbeddedEngine(data).socket_path == engine.socket_path  # stable: derived from the dir
    with caplog.at_level(logging.INFO, logger="restmq.engine"), engine, client(engine) as r:
        assert r.set("k", "v")
    assert "too long for a unix socket" in caplog.text
    assert not Path(engine.socket_path).exists()


def test_engine_that_exits_at_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EngineError, match=r"(?s)exited with code 3.*FATAL CONFIG boom"):
        EmbeddedEngine(tmp_path / "data", binary=str(fake)).start()
    with EmbeddedEngine(tmp_path / "data") as engine, client(engine) as r:  # the lock was released
        assert r.ping()


def test_missing_explicit_binary(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not found"):
        find_engine_binary(str(tmp_path / "nope"))


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH")
def test_redis_server_on_path_works_too(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path, binary="redis-server") as engine, client(engine) as r:
        assert r.info("server")["redis_version"].startswith("7.")
        assert r.config_get("appenddirname") == {"appenddirname": "appendonly"}


def test_engine_that_never_answers_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "mute-server"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    engine = EmbeddedEngine(tmp_path / "data", binary=str(fake))
    with pytest.raises(EngineError, match="did not answer PING within 0.2s"):
        engine.start(timeout=0.2)
    assert engine.pid is None
