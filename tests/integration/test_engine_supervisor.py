"""Engine supervision against the real valkey-server binary: restarts, reaping, giving up (issue 14, item 1)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
import redis

from restmq.storage.engine import EmbeddedEngine
from restmq.storage.supervisor import MAX_FAILURES, EngineSupervisor
from tests.helpers.engine_faults import wait_aof_written
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def kill_and_wait_for_the_next(engine: EmbeddedEngine, supervisor: EngineSupervisor) -> int | None:
    """kill -9 the running engine; the pid of the one that replaces it, or None once the supervisor gave up."""
    victim, restarts = engine.pid, supervisor.restarts
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: supervisor.gave_up or supervisor.restarts > restarts, 30, 0.01, "a restart or giving up")
    wait_until(lambda: not Path(f"/proc/{victim}").exists(), 5, 0.01, f"engine pid {victim} to be reaped")
    return None if supervisor.gave_up else engine.pid


def test_a_killed_engine_is_restarted_on_its_socket_with_its_data(own_engine: EmbeddedEngine) -> None:
    engine = own_engine
    with redis.Redis(unix_socket_path=engine.socket_path) as client:
        client.rpush("q", *[f"item-{i}" for i in range(1000)])
    wait_aof_written(engine.socket_path)  # everysec: acknowledged is not yet written while a slow fsync runs
    supervisor = EngineSupervisor(engine, give_up=lambda: pytest.fail("gave up after one death"))
    supervisor.start()
    try:
        assert kill_and_wait_for_the_next(engine, supervisor) is not None
        with redis.Redis(unix_socket_path=engine.socket_path) as client:
            assert client.llen("q") == 1000
    finally:
        supervisor.stop()
    assert engine.pid is None
    assert not Path(engine.socket_path).exists()


def test_an_engine_dying_again_and_again_gives_up_once(
    own_engine: EmbeddedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = own_engine
    calls: list[str] = []
    supervisor = EngineSupervisor(engine, give_up=lambda: calls.append("give up"))
    caplog.set_level(logging.INFO, "restmq.engine")
    supervisor.start()
    try:
        deaths = 0
        while True:
            deaths += 1
            if kill_and_wait_for_the_next(engine, supervisor) is None:
                break
            assert deaths < MAX_FAILURES
        assert deaths == MAX_FAILURES
        assert calls == ["give up"]
        assert engine.pid is None
        assert len([r for r in caplog.records if r.levelno == logging.CRITICAL]) == 1
        assert len([r for r in caplog.records if "engine restarted" in r.getMessage()]) == MAX_FAILURES - 1
    finally:
        supervisor.stop()
