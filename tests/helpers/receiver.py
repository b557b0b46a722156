"""A real webhook receiver for push tests: a small ASGI app on uvicorn, in its own thread (so that tests may block,
e.g. while a `restmq serve` starts), recording every delivery.

Paths choose the behaviour: /ok (200), /fail (500), /slow?s=SECONDS (then 200), /hang (never answers),
/redirect (307 to /ok), /gone (410), /flaky?n=N (500 for the first N attempts of each message, then 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.helpers.server import free_port
from tests.helpers.wait import wait_until


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    status: int = 0  # what the receiver answered (0: not yet)


@dataclass
class Receiver:
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    acked: Counter[str] = field(default_factory=Counter)  # webhook-id -> 2xx answers to a sender still connected
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [d.headers["webhook-id"] for d in self.deliveries if path is None or d.path == path]

    def count(self, path: str | None = None) -> int:
        return len(self.ids(path))

    async def wait_count(self, n: int, timeout: float = 20.0, path: str | None = None) -> None:
        """Wait (without blocking the event loop: the server under test may run in it) for `n` deliveries."""
        deadline = time.monotonic() + timeout
        while self.count(path) < n:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {n} deliveries (got {self.count(path)})"
                )
            await asyncio.sleep(0.01)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        delivery = Delivery(request.url.path, dict(request.headers), body, time.monotonic())
        with self.lock:
            self.deliveries.append(delivery)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = await self._answer(request, delivery)
        finally:
            with self.lock:
                self.in_flight -= 1
        if 200 <= reply.status_code < 300 and not await request.is_disconnected():
            with self.lock:
                self.acked[delivery.headers.get("webhook-id", "")] += 1
        delivery.status = reply.status_code
        return reply

    async def _answer(self, request: Request, delivery: Delivery) -> Response:
        path = delivery.path
        if path == "/fail":
            return Response("boom", 500)
        if path == "/slow":
            await asyncio.sleep(float(request.query_params.get("s", "1")))
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path == "/redirect":
            return RedirectResponse("/ok", 307)
        elif path == "/gone":
            return Response("gone", 410)
        elif path == "/flaky":
            seen = sum(1 for d in self.deliveries if d.headers.get("webhook-id") == delivery.headers.get("webhook-id"))
            if seen <= int(request.query_params.get("n", "1")):
                return Response("not yet", 503)
        return Response("ok", 200)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """A running receiver on a free loopback port; stopped on exit (then its port refuses connections)."""
    found = Receiver()
    app = Starlette(routes=[Route("/{path:path}", found.handle, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, 0.01, "the receiver to start")
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        server.should_exit = True
        server.force_exit = True  # /hang requests never end by themselves
        thread.join(15)
