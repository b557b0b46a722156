"""`restmq serve` as a real process on an embedded engine: persistence, crashes, one server per data dir."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.wait import process_gone, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT = 1_000


def add_all(url: str, queue: str, values: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(values), 250):
            response = client.post(f"/q/{queue}", json=values[start : start + 250])
            assert response.status_code == 200, response.text


def take_all(url: str, queue: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=30) as client:
        values: list[str] = []
        while (response := client.get(f"/q/{queue}", params={"count": 400})).status_code == 200:
            values += [m["value"] for m in response.json()]
        assert response.status_code == 204, response.text
        return values


def engine_pid(data_dir: Path) -> int:
    return int((data_dir / "valkey.pid").read_text().strip())


def test_messages_survive_a_clean_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    values = [f"persistent-{i}" for i in range(COUNT)]
    with serve(["--data-dir", str(data)], tmp_path, "first") as first:
        add_all(first.url, "jobs", values)
        pid = engine_pid(data)
    assert first.proc.returncode == 0, first.log()
    wait_until(lambda: process_gone(pid), timeout=10, what="the engine to stop with its server")
    with serve(["--data-dir", str(data)], tmp_path, "second") as second:
        assert take_all(second.url, "jobs") == values


def test_kill_9_of_the_server_leaves_no_engine_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    values = [f"crash-{i}" for i in range(COUNT)]
    with serve(["--data-dir", str(data)], tmp_path, "crashing") as crashing:
        add_all(crashing.url, "jobs", values)
        pid = engine_pid(data)
        crashing.kill(signal.SIGKILL)
        assert crashing.proc.returncode == -signal.SIGKILL
    wait_until(lambda: process_gone(pid), timeout=10, what=f"engine pid {pid} to exit after its server's kill -9")
    with serve(["--data-dir", str(data)], tmp_path, "after") as after:
        assert engine_pid(data) != pid
        assert take_all(after.url, "jobs") == values


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(["--data-dir", str(data)], tmp_path, "owner") as owner:
        add_all(owner.url, "jobs", ["still mine"])
        second = ServeProcess(["--data-dir", str(data)], free_port(), tmp_path / "second.log")
        try:
            code = second.proc.wait(30)
        finally:
            second.stop()
        assert code != 0
        log = second.log()
        assert "in use" in log and str(data) in log, log
        assert f"pid {owner.proc.pid}" in log, log
        assert take_all(owner.url, "jobs") == ["still mine"]  # the owner was not disturbed


def test_sigterm_stops_the_engine_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(["--data-dir", str(data)], tmp_path) as running:
        pid = engine_pid(data)
        assert not process_gone(pid)
        running.kill(signal.SIGTERM)
        assert running.proc.returncode == 0, running.log()
    wait_until(lambda: process_gone(pid), timeout=10, what="the engine to stop")
    assert not (data / "valkey.pid").exists()
    assert os.path.exists(data / "appendonly")
