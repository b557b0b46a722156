"""The asyncio half of what the two clients cannot share: waiting, calling a handler, running workers.

The blocking client (sync.py, _sync_stream.py, _sync_worker.py) is generated from the asyncio one (aio.py,
_aio_stream.py, _aio_worker.py) by scripts/generate-sync-client; the asyncio modules import this one, the generated
ones import :mod:`restmq.client._sync_flavor`, which defines the same names.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import threading
from collections.abc import Awaitable, Callable

import httpx

from restmq.client.models import Message

Handler = Callable[[Message], Awaitable[object] | object]


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less when `event` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def call_handler(handler: Handler, message: Message) -> None:
    """A coroutine function's result is awaited; a plain function runs in the event loop."""
    result = handler(message)
    if inspect.isawaitable(result):
        await result


def interrupt_read(response: httpx.Response | None) -> None:
    """Nothing to do: closing the response ends a read pending in the event loop."""


async def run_workers(
    run: Callable[[], Awaitable[None]], stop: asyncio.Event, name: str, concurrency: int, handle_signals: bool
) -> None:
    """Run `concurrency` tasks of `run` until they end; SIGINT and SIGTERM set `stop` (main thread only)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    try:
        await asyncio.gather(*(run() for _ in range(concurrency)))
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
