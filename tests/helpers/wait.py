"""Polling helpers: wait for a condition instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


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
    predicate: Callable[[], Awaitable[object]], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> object:
    """Async ``wait_until``: await ``predicate()`` until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate!r}")
        await asyncio.sleep(interval)
