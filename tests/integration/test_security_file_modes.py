"""The embedded engine's data dir is private to its user (issue 13): the dir is 0700 and every file in it
(the AOF, its manifest and base, the pid, lock, log and socket) has no group or other bits, so other
local users cannot read messages or token digests."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth import restmq_cli
from tests.helpers.server import serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def modes(data: Path) -> dict[str, str]:
    """Every path under `data` (itself included) with its permission bits, e.g. {"appendonly": "0o700"}."""
    found = {".": oct(stat.S_IMODE(data.stat().st_mode))}
    for path in data.rglob("*"):
        found[str(path.relative_to(data))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def assert_private(data: Path) -> None:
    found = modes(data)
    assert found["."] == "0o700", found
    exposed = {name: mode for name, mode in found.items() if int(mode, 8) & 0o077}
    assert not exposed, f"readable by other users: {exposed} (all: {found})"


def add_and_wait_for_the_aof(url: str, data: Path) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(5):
            assert client.post("/q/private", data={"value": f"secret-{i}"}).status_code == 200

    def written() -> bool:
        return any(b"secret-4" in path.read_bytes() for path in (data / "appendonly").glob("*.aof"))

    wait_until(written, timeout=20, interval=0.1, what="the adds to reach the AOF")


def test_a_new_data_dir_and_every_engine_file_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)  # the usual umask: the server must not depend on a stricter one
    try:
        with serve(["--data-dir", str(data)], tmp_path) as server:
            add_and_wait_for_the_aof(server.url, data)
            assert (data / "valkey.sock").exists() and (data / "valkey.pid").exists()
            assert_private(data)
    finally:
        os.umask(old)
    assert_private(data)  # after a clean stop too


def test_an_existing_open_data_dir_is_made_private_at_start(tmp_path: Path) -> None:
    """A data dir from an earlier version (0755, with a 0644 log) is fixed at start, and the log says so."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    (data / "valkey.log").write_text("an old log\n")
    (data / "valkey.log").chmod(0o644)
    with serve(["--data-dir", str(data)], tmp_path) as server:
        add_and_wait_for_the_aof(server.url, data)
        assert_private(data)
        assert f"data dir {data} was mode 0755; made it 0700" in server.log(), server.log()


def test_the_token_command_keeps_the_data_dir_private(tmp_path: Path) -> None:
    """`restmq token create` starts the engine for the moment when no server runs: same modes."""
    data = tmp_path / "data"
    result = restmq_cli("token", "create", "--data-dir", str(data), "--queues", "*", "--rights", "admin")
    assert result.returncode == 0, result.stderr
    assert_private(data)
