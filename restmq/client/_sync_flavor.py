"""The blocking half of what the two clients cannot share: waiting, calling a handler, running workers.

It mirrors :mod:`restmq.client._aio_flavor` name for name; the generated sync.py, _sync_stream.py and
_sync_worker.py import it (scripts/generate-sync-client).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx

from restmq.client.models import Message

log = logging.getLogger("restmq.client")

Handler = Callable[[Message], object]


def wait_event(event: threading.Event, seconds: float) -> None:
    """Wait `seconds`, or less when `event` is set meanwhile."""
    event.wait(seconds)


def call_handler(handler: Handler, message: Message) -> None:
    handler(message)


def interrupt_read(response: httpx.Response | None) -> None:
    """Wake a thread blocked reading `response`: shut its socket down (closing alone does not)."""
    stream = response.extensions.get("network_stream") if response is not None else None
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def run_workers(
    run: Callable[[], None], stop: threading.Event, name: str, concurrency: int, handle_signals: bool
) -> None:
    """Run `concurrency` threads of `run` until they end. Ctrl-C, and SIGTERM when `handle_signals` (main
    thread only), set `stop` and wait for the messages in hand."""
    threads = [threading.Thread(target=run, name=f"restmq-consume-{name}-{i}", daemon=True) for i in range(concurrency)]
    previous = _install_sigterm(stop) if handle_signals else None
    try:
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(0.1)
        except KeyboardInterrupt:
            log.info("consume %s: interrupted, finishing the messages in hand", name)
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()

    return signal.signal(signal.SIGTERM, on_sigterm)
