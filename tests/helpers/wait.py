"""Polling helpers: wait for a condition instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01, what: str = "") -> None:
    """Poll ``predicate`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited. A zombie counts as gone: PID 1 of some containers never reaps orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


async def wait_for(
    predicate: Callable[[], Awaitable[T]], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """Async ``wait_until``: await ``predicate()`` until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        await asyncio.sleep(interval)


async def long_polls_waiting(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    """The server process's `restmq_process_long_polls_waiting` gauge, read from /metrics."""
    reply = await http.get("/metrics", headers=headers)
    reply.raise_for_status()
    for line in reply.text.splitlines():
        if line.startswith("restmq_process_long_polls_waiting "):
            return int(float(line.split()[1]))
    raise AssertionError("/metrics has no restmq_process_long_polls_waiting")


async def wait_parked(
    http: httpx.AsyncClient, n: int, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> None:
    """Wait until exactly `n` long-polls wait in the server process of `http` (an add from now on wakes them)."""
    seen: list[int] = []

    async def parked() -> bool:
        seen.append(await long_polls_waiting(http, headers))
        return seen[-1] == n

    try:
        await wait_for(parked, timeout, 0.02, f"{n} parked long-polls")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last saw {seen[-1:]})") from None
