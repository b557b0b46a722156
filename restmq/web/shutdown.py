"""Streams end first when the server is told to stop.

Called before the server waits for open connections, the application's shutdown hooks end every stream at once
(SSE clients get a short retry, WebSockets close with 1012, dashboards their last event) instead of holding
shutdown up. The hooks are state of the application (``app.state.shutdown``); its lifespan has the server's
SIGINT/SIGTERM handler run them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from starlette.applications import Starlette


class ShutdownHooks:
    def __init__(self) -> None:
        self._hooks: list[Callable[[], object]] = []

    def begin(self) -> None:
        """Run every hook: the server is stopping."""
        for hook in list(self._hooks):
            hook()

    def add(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Have `begin` call `callback` in the running event loop (thread-safe: `begin` runs from a signal
        handler, or from granian's worker thread). Returns what takes it off again."""
        hook = functools.partial(asyncio.get_running_loop().call_soon_threadsafe, callback)
        self._hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._hooks.remove(hook)

        return remove

    @contextlib.contextmanager
    def calling(self, callback: Callable[[], object]) -> Iterator[None]:
        """`add` while inside."""
        remove = self.add(callback)
        try:
            yield
        finally:
            remove()

    def chain_exit_signals(self) -> None:
        """Run `begin` first when the server's own SIGINT/SIGTERM handler is called. uvicorn installs its
        handlers before the lifespan starts and restores the originals after it ends."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if callable(previous) and getattr(previous, "__name__", "") != "_shutdown_first":

                def _shutdown_first(signum: int, frame: Any, previous: Callable[[int, Any], Any] = previous) -> None:
                    self.begin()
                    previous(signum, frame)

                signal.signal(sig, _shutdown_first)


def hooks_of(app: Starlette) -> ShutdownHooks:
    hooks: ShutdownHooks = app.state.shutdown
    return hooks


def begin_shutdown(app: Starlette) -> None:
    """What a stop signal does first: every open stream of `app` ends."""
    hooks_of(app).begin()
