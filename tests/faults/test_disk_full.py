"""A full disk under the embedded engine (issue 14): the engine answers MISCONF to writes; every add
is a 503 with Retry-After and the JSON error, never a 500 or a reset connection; once space returns,
adds work again within seconds, and no message answered 200 is lost."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.keepalive import Answer, KeepAlive, assert_unavailable, keep_alive
from tests.helpers.server import serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVERS = {"uvicorn": [], "granian": ["--server", "granian"]}
RECOVERY_BOUND = 6.0  # seconds from freeing space to the next 200 (bench target: 2 s)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system has no space left."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
        # the last partial block: a byte at a time
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0")


def space_left(path: Path) -> bool:
    try:
        with open(path / "probe", "wb", buffering=0) as handle:
            handle.write(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        return False
    (path / "probe").unlink()
    return True


async def adds_until(conn: KeepAlive, queue: str, status: int, acked: dict[str, str], timeout: float) -> Answer:
    """Add on `conn` until an add answers `status`; every answer is 200 or 503, and each 200 is recorded."""
    deadline = time.monotonic() + timeout
    n = len(acked)
    while True:
        value = f"m{n}"
        answer = await conn.add(queue, value)
        assert answer.status in (200, 503), (answer.status, answer.body)
        if answer.status == 200:
            acked[answer.body.decode().strip()] = value
            n += 1
        else:
            assert_unavailable(answer)
        if answer.status == status:
            return answer
        assert time.monotonic() < deadline, f"no {status} within {timeout}s"
        await asyncio.sleep(0.02)  # the adds' pace, not a wait for a condition


@pytest.mark.parametrize("server", SERVERS)
async def test_a_full_disk_gives_503s_on_a_usable_connection_then_200s_and_loses_nothing(
    server: str, small_disk: Path, tmp_path: Path
) -> None:
    data = small_disk / "data"
    acked: dict[str, str] = {}  # key -> value of every add answered 200
    with serve(["--data-dir", str(data), *SERVERS[server]], tmp_path) as process:
        async with keep_alive(process.url) as conn:
            for _ in range(20):
                await adds_until(conn, "disk", 200, acked, timeout=10)
            fill(data / "filler")  # beside the AOF directory
            assert not space_left(small_disk)
            await adds_until(conn, "disk", 503, acked, timeout=15)
            # the engine refuses writes: the lean add, a batch add, an add with options, a take, a lease
            assert_unavailable(await conn.add("disk", "refused"))
            batch = b'["a", "b"]'
            assert_unavailable(await conn.request("POST", "/q/disk", batch, {"Content-Type": "application/json"}))
            assert_unavailable(await conn.add("disk?priority=3", "refused"))
            assert_unavailable(await conn.request("GET", "/q/disk"))
            assert_unavailable(await conn.request("GET", "/q/disk?lease=30"))
            assert (await conn.request("GET", "/health")).status == 200  # the same connection, still usable

            (data / "filler").unlink()
            freed = time.monotonic()
            await adds_until(conn, "disk", 200, acked, timeout=RECOVERY_BOUND * 3)
            recovery = time.monotonic() - freed
            assert recovery < RECOVERY_BOUND, f"adds answered 200 again only {recovery:.1f}s after space returned"

        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            found = (await http.get("/q/disk", params={"count": 1000})).json()
        assert {m["key"]: m["value"] for m in found} == acked
        log = process.log()
    assert "Traceback" not in log, log
