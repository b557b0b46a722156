"""`restmq serve --workers N` on uvicorn: N worker processes, each listening on a socket of its own
bound to the same port with SO_REUSEPORT, under a small supervisor (this module).

With one listening socket shared by all workers (uvicorn's own `--workers`), a new connection wakes
every idle worker and whichever runs first accepts it. On a quiet server that is mostly the same
process, so one worker ends up holding most of the long-lived streams. With a socket per worker the
kernel spreads connections over the workers by a hash of their addresses, as nginx's `reuseport`.

The supervisor starts a new worker when one dies after it was serving; a worker that dies before it
ever served (an app that cannot start) stops the server with an error, as it would fail the
same way again. On SIGTERM or SIGINT every worker is told to stop, drains its
requests for up to GRACEFUL_SHUTDOWN seconds, and the supervisor returns once all have exited.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import asdict
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

import click

from restmq.cli.serve import GRACEFUL_SHUTDOWN, SETTINGS_ENV
from restmq.cli.sockets import bind_socket, listening_socket, refuse_a_port_in_use
from restmq.config import Settings

log = logging.getLogger("restmq")

PARENT_ENV = "RESTMQ_INTERNAL_PARENT"  # the pid of `restmq serve`, which its workers die with


def hand_settings_to_workers(settings: Settings) -> None:
    """Spawned workers (uvicorn's here, granian's) build their app from these variables."""
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    os.environ[PARENT_ENV] = str(os.getpid())


def run_workers(settings: Settings, uvicorn_options: dict[str, Any]) -> None:
    refuse_a_port_in_use(settings.host, settings.port)
    # Bound but never listening: it takes no connections, holds the port while workers restart, and
    # picks the port for all of them when --port is 0.
    reserved = listening_socket(settings.host, settings.port, reuse_port=True)
    port = reserved.getsockname()[1]
    hand_settings_to_workers(settings)
    options = {**uvicorn_options, "host": settings.host, "port": port}
    context = multiprocessing.get_context("spawn")  # a forked worker would inherit the data dir's lock

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    def start() -> tuple[BaseProcess, Event]:
        ready = context.Event()
        process = context.Process(target=worker_main, args=(options, ready), name="restmq-worker")
        process.start()
        return process, ready

    workers = [start() for _ in range(settings.workers)]
    announced = False
    failed = False
    try:
        while not stop.wait(0.2):
            for slot, (process, ready) in enumerate(workers):
                if process.is_alive():
                    continue
                if not ready.is_set():
                    log.error("worker %d exited with %s before it served; stopping", process.pid, process.exitcode)
                    failed = True
                    stop.set()
                    break
                log.error("worker %d exited with %s; starting a new one", process.pid, process.exitcode)
                workers[slot] = start()
            if not announced and all(ready.is_set() for _, ready in workers):
                log.info("%d workers listening on port %d", len(workers), port)
                announced = True
    finally:
        for process, _ in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_SHUTDOWN + 10  # they drain at the same time
        for process, _ in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %d did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        reserved.close()
    if failed:
        raise click.ClickException("a worker process could not start; its error is logged above")


def worker_main(options: dict[str, Any], ready: Event) -> None:
    """A worker process: uvicorn on a SO_REUSEPORT socket of its own, the app built from the
    settings in the environment; `ready` is set once it listens."""
    import uvicorn

    from restmq.children import die_with_parent

    die_with_parent(int(os.environ[PARENT_ENV]))()  # SIGTERM: shut down as when told to stop

    class Worker(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                ready.set()

    sock = bind_socket(options["host"], options["port"], reuse_port=True)
    server = Worker(uvicorn.Config("restmq.cli.serve:app_from_env", factory=True, **options))
    server.run(sockets=[sock])
