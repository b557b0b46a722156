"""Engine supervision: the embedded engine is restarted when it dies, and the server stops when it cannot be.

A thread of `restmq serve`'s main process watches the engine child. When it exits (kill -9, the OOM killer, a
crash) it is reaped and started again at once on the same data dir and socket path, where the workers' connection
pools and event listeners find it again by themselves. Each death and each failed restart counts as a failure;
the failures within FAILURE_WINDOW seconds set the wait before the next attempt (RESTART_BACKOFF), and the
MAX_FAILURES-th gives up: one critical log line, then the server stops as on SIGTERM and `restmq serve` exits
with ENGINE_FAILED_EXIT, for a service manager to take over.

PR_SET_PDEATHSIG fires when the *thread* that started the engine exits: the supervisor thread therefore lives
until the engine is stopped, and stop() stops the engine before it lets the thread end.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from restmq.errors import EngineError
from restmq.storage.engine import EmbeddedEngine

log = logging.getLogger("restmq.engine")

MAX_FAILURES = 5  # deaths and failed restarts within FAILURE_WINDOW that stop the server
FAILURE_WINDOW = 60.0
RESTART_BACKOFF = (0.0, 0.5, 1.0, 2.0)  # seconds before the restart after the 1st, 2nd, ... recent failure
RESTART_TIMEOUT = 30.0  # for the restarted engine to answer PING (it loads the AOF first)
POLL_INTERVAL = 0.1  # how often the engine child is looked at: how late a death may be noticed
ENGINE_FAILED_EXIT = 4


def stop_this_server() -> None:
    """What the HTTP servers and the --workers supervisor already take as "shut down gracefully"."""
    os.kill(os.getpid(), signal.SIGTERM)


class EngineSupervisor:
    """Watches one started EmbeddedEngine from a thread; `gave_up` tells the caller to exit non-zero."""

    def __init__(self, engine: EmbeddedEngine, *, give_up: Callable[[], None] = stop_this_server) -> None:
        self._engine = engine
        self._give_up = give_up
        self._lock = threading.Lock()  # the engine is started and stopped by one thread at a time
        self._stopping = threading.Event()
        self._failures: collections.deque[float] = collections.deque()
        self._thread: threading.Thread | None = None
        self._last_error = ""  # the first line of the last failed restart's error
        self.gave_up = False
        self.restarts = 0  # engines started again, answering

    def start(self) -> None:
        pid = self._engine.pid  # read here: the engine may die before the thread runs
        self._thread = threading.Thread(target=self._watch, args=(pid,), name="restmq-engine-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and stop the engine (after a restart in progress has finished)."""
        self._stopping.set()
        with self._lock:
            self._engine.stop()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, pid: int | None) -> None:
        try:
            while not self._stopping.wait(POLL_INTERVAL):
                with self._lock:
                    if self._stopping.is_set():
                        return
                    code = self._engine.exit_code()  # reaps a dead engine
                if code is None:
                    continue
                log.error("engine pid %s died (%s)", pid, _exit_reason(code))
                restarted = self._restart()
                if restarted is None:
                    return
                pid = restarted
        except Exception as exc:  # never leave the server serving 503s with nobody watching the engine
            log.exception("engine supervision failed")
            self._stop_server(f"supervision failed: {exc}")

    def _restart(self) -> int | None:
        """The new engine's pid, or None once stopping or given up."""
        while True:
            delay = self._failed()
            if delay is None:
                return None
            if self._stopping.wait(delay):
                return None
            with self._lock:
                if self._stopping.is_set():
                    return None
                started = time.monotonic()
                try:
                    pid = self._engine.restart(RESTART_TIMEOUT)
                except EngineError as exc:
                    # The first line says what happened and names the engine's log; the lines of that log follow.
                    first, _, details = str(exc).partition("\n")
                    self._last_error = first.removesuffix("; its last lines:")
                    log.error("engine restart failed: %s", self._last_error)
                    log.debug("the engine log's last lines:\n%s", details)
                    continue
            took = time.monotonic() - started
            self.restarts += 1
            log.warning(
                "engine restarted: pid %d on unix socket %s, answering after %.2f s (%d failure(s) in the last %g s)",
                pid,
                self._engine.socket_path,
                took,
                len(self._failures),
                FAILURE_WINDOW,
            )
            return pid

    def _failed(self) -> float | None:
        """Count a failure: the wait before the next restart, or None once there were too many (then gives up)."""
        now = time.monotonic()
        self._failures.append(now)
        while self._failures[0] < now - FAILURE_WINDOW:
            self._failures.popleft()
        if len(self._failures) >= MAX_FAILURES:
            self._stop_server(f"{len(self._failures)} failures within {FAILURE_WINDOW:g} s")
            return None
        return RESTART_BACKOFF[min(len(self._failures), len(RESTART_BACKOFF)) - 1]

    def _stop_server(self, why: str) -> None:
        last = f" (last: {self._last_error})" if self._last_error else ""
        log.critical(
            "embedded engine failed: %s%s; stopping the server, exit code %d, for its service manager to restart it",
            why,
            last,
            ENGINE_FAILED_EXIT,
        )
        self.gave_up = True
        self._give_up()


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
