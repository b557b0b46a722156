"""`restmq serve --server granian`: granian's embedded server, and what RestMQ adds to it so that it
behaves as on uvicorn (shutdown order, in-flight requests, WebSocket frame limit, a port in use)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from restmq.cli.serve import GRACEFUL_SHUTDOWN, SETTINGS_ENV, app_from_env
from restmq.cli.sockets import refuse_a_port_in_use, refuse_ipv6_only_granian
from restmq.cli.workers import PARENT_ENV, hand_settings_to_workers
from restmq.config import Settings

if TYPE_CHECKING:
    from granian.server import MPServer, MTServer

log = logging.getLogger("restmq")

STREAM_PATHS = ("/c/", "/sse/", "/stats/stream")  # the HTTP streams (COMET, SSE, the dashboard's)


def run_granian(settings: Settings) -> None:
    """Serve on granian's embedded API (`granian.server.Server`), which runs the app in worker
    processes only, even for one worker: each builds its app from the settings in the environment
    through the `granian_app` factory, as uvicorn's --workers N do, so nothing needs pickling.

    The workers are spawned, not forked: a forked worker would inherit the data dir's lock and the
    parent's state. On SIGTERM or SIGINT granian's main process tells each worker to stop, waits for
    it, and returns here, where the embedded engine is stopped last."""
    import multiprocessing

    from restmq.web.observe import configure_logging

    refuse_ipv6_only_granian(settings.host)
    refuse_a_port_in_use(settings.host, settings.port)  # granian listens with SO_REUSEPORT
    multiprocessing.set_start_method("spawn", force=True)
    hand_settings_to_workers(settings)
    try:
        server = _granian_server(settings)
        configure_logging(settings.log_level, settings.log_format)  # granian's dictConfig unregistered our handler
        server.serve()
    except OSError as exc:
        raise click.ClickException(f"granian cannot start: {exc}") from None
    except RuntimeError as exc:  # from granian's Rust side, e.g. "Address already in use (os error 98)"
        where = f"{settings.host}:{settings.port}"
        raise click.ClickException(f"granian cannot start on {where}: {_first_line(exc)}") from None


def _granian_server(settings: Settings) -> MPServer | MTServer:  # granian.server.Server: one or the other, by build
    """granian's server for the settings, with the app built in each worker by `granian_app`."""
    from pathlib import Path

    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    level = settings.log_level.upper()
    return Server(
        "restmq.cli.granian_server:granian_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # with the lifespan
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=True,
        backlog=2048,
        # granian holds one permit per open connection: leave room for every stream and then some
        backpressure=settings.limits.max_streams + 2048,
        # hyper's header read timeout also runs while a keep-alive connection waits for its next request
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.limits.idle_timeout * 1000)),
        log_level=LogLevels(settings.log_level),
        # granian's loggers go through RestMQ's handler (text or JSON), like uvicorn's
        log_dictconfig={
            "handlers": {},
            "loggers": {
                "_granian": {"level": level, "propagate": True},
                "granian.access": {"level": level, "propagate": True},
            },
        },
        log_access=settings.log_level == "debug",
        ssl_cert=Path(settings.tls_cert) if settings.tls_cert else None,
        ssl_key=Path(settings.tls_key) if settings.tls_key else None,
        ssl_protocol_min=SSLProtocols.tls12,  # granian's default is TLS 1.3 only; uvicorn also takes 1.2
        workers_kill_timeout=GRACEFUL_SHUTDOWN + 10,  # a worker still running then is killed
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def granian_app() -> Any:
    """granian worker-process entry point: the app, wrapped in DrainFirst, dying with the `restmq
    serve` process that spawned it (a kill -9 of that process must not leave workers serving)."""
    from restmq.children import die_with_parent

    die_with_parent(int(os.environ[PARENT_ENV]))()  # SIGTERM: the worker shuts down as when told to stop
    raw = json.loads(os.environ[SETTINGS_ENV])
    app = DrainFirst(app_from_env(), raw["limits"]["max_frame"])
    # granian makes the worker's event loop, loads the app, then adds its SIGTERM/SIGINT handlers to
    # that loop: hand them to the app, which ends its WebSockets before granian stops the worker.
    loop = asyncio.get_event_loop()
    add_signal_handler = loop.add_signal_handler

    def stop_websockets_first(sig: int, callback: Callable[..., object], *args: Any) -> None:
        add_signal_handler(sig, app.stop, functools.partial(callback, *args))

    loop.add_signal_handler = stop_websockets_first  # type: ignore[method-assign,assignment]
    return app


class DrainFirst:
    """ASGI wrapper giving granian what uvicorn does itself at shutdown and on large frames.

    Told to stop, a granian worker ends every WebSocket at once, from Rust, and can send no close
    frame after that; `stop` ends the streams first (`begin_shutdown`: SSE `retry:`, WebSocket
    1012) and lets granian stop the worker once the WebSockets are closed. granian then runs the
    lifespan shutdown while requests are still in flight: they get to finish (GRACEFUL_SHUTDOWN
    seconds at most) before the app closes its store. And granian has no WebSocket message size
    limit: a message over `max_frame` closes the connection with 1009, as uvicorn's ws_max_size."""

    def __init__(self, app: Any, max_frame: int) -> None:
        self.app = app
        self.max_frame = max_frame
        self.stopping = False
        self.requests = _Counter()  # every HTTP request and WebSocket in progress
        self.websockets = _Counter()
        self._stopper: asyncio.Task[None] | None = None

    def stop(self, stop_worker: Callable[[], object]) -> None:
        """The worker's SIGTERM/SIGINT handler: end the streams, then let granian stop the worker.
        A second signal while the streams end changes nothing (the main process sends one too)."""
        from restmq.web.shutdown import begin_shutdown

        if self.stopping:
            return
        self.stopping = True
        begin_shutdown(self.app)

        async def then_stop_worker() -> None:
            if not await self.websockets.wait_zero(GRACEFUL_SHUTDOWN):
                log.warning("%d WebSocket(s) still open after %ds", self.websockets.value, GRACEFUL_SHUTDOWN)
            stop_worker()

        self._stopper = asyncio.get_running_loop().create_task(then_stop_worker())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._drain_on_shutdown(receive), send)
            return
        if self.stopping and (scope["type"] == "websocket" or scope["path"].startswith(STREAM_PATHS)):
            await self._refuse_stream(scope, receive, send)
            return
        if scope["type"] == "websocket":
            with self.requests, self.websockets:
                await self.app(scope, self._limit_frames(receive, send), send)
            return
        with self.requests:
            if _declares_a_body(scope):
                receive, send = _closing_if_the_body_is_unread(receive, send)
            await self.app(scope, receive, send)

    async def _refuse_stream(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A stream opened while the worker stops would never be ended: refuse it, so that the
        client comes back to another process, or to this port once a new server listens."""
        from restmq.core.dispatch import SHUTDOWN
        from restmq.errors import TooManyStreams
        from restmq.web.errors import error_response

        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1012, "reason": SHUTDOWN})
            return
        refused = TooManyStreams(SHUTDOWN + "; connect again", code="SHUTTING_DOWN")  # 503, Retry-After: 1
        await error_response(refused)(scope, receive, send)

    def _drain_on_shutdown(self, receive: Any) -> Any:
        async def receive_drained() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.shutdown":
                from restmq.web.shutdown import begin_shutdown

                begin_shutdown(self.app)  # in case the worker was stopped some other way
                if not await self.requests.wait_zero(GRACEFUL_SHUTDOWN):
                    log.warning("%d request(s) still open after %ds", self.requests.value, GRACEFUL_SHUTDOWN)
            return message

        return receive_drained

    def _limit_frames(self, receive: Any, send: Any) -> Any:
        async def receive_limited() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "websocket.receive":
                data = message.get("bytes") or message.get("text") or b""
                size = len(data) if isinstance(data, bytes) else len(data.encode())
                if size > self.max_frame:
                    await send({"type": "websocket.close", "code": 1009, "reason": "message too big"})
                    return {"type": "websocket.disconnect", "code": 1009}
            return message

        return receive_limited


def _declares_a_body(scope: dict[str, Any]) -> bool:
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in scope["headers"]
    )


def _closing_if_the_body_is_unread(receive: Any, send: Any) -> tuple[Any, Any]:
    """granian ends the connection after a response whose request body was not read (a refusal, a route that
    reads none), without saying so: the response says `Connection: close`, so that a keep-alive client does not
    send its next request into the closing connection (uvicorn: restmq/cli/uvicorn_http.py)."""
    body_read = False

    async def receive_tracked() -> dict[str, Any]:
        nonlocal body_read
        message: dict[str, Any] = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_read = True
        return message

    async def send_closing(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not body_read:
            message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
        await send(message)

    return receive_tracked, send_closing


class _Counter:
    """How many of something are in progress (`with counter:`), and a wait for none."""

    def __init__(self) -> None:
        self.value = 0
        self._zero = asyncio.Event()
        self._zero.set()

    def __enter__(self) -> None:
        self.value += 1
        self._zero.clear()

    def __exit__(self, *exc: object) -> None:
        self.value -= 1
        if not self.value:
            self._zero.set()

    async def wait_zero(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._zero.wait(), timeout)
        except TimeoutError:
            return False
        return True
