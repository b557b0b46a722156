"""An engine that answers but refuses (issue 14): a script running too long (BUSY), maxmemory reached
(OOM), turned into a replica (READONLY), a replica cut off from its master (MASTERDOWN). Every route
that needs the refused commands answers 503 with Retry-After and the JSON error, a WebSocket frame
gets the same error as a frame, and everything works again once the engine serves."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import orjson
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.server import run_app
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
WRITES: dict[str, Call] = {
    "lean add": lambda http: http.post("/q/jobs", data={"value": "v"}),
    "add with options": lambda http: http.post("/q/jobs", params={"priority": 3}, data={"value": "v"}),
    "batch add": lambda http: http.post("/q/jobs", json=["a", "b"]),
    "lean take": lambda http: http.get("/q/jobs"),
    "lease": lambda http: http.get("/q/jobs", params={"lease": 30}),
    "long-poll": lambda http: http.get("/q/jobs", params={"wait": 1}),
    "JSON protocol": lambda http: http.post("/queue", json={"cmd": "add", "queue": "jobs", "value": "v"}),
    "purge": lambda http: http.delete("/q/jobs"),
    "SSE consumer": lambda http: http.get("/sse/jobs"),
}
READS: dict[str, Call] = {"stats": lambda http: http.get("/stats/jobs")}
ADDS = {name: call for name, call in WRITES.items() if "add" in name or name == "JSON protocol"}


@pytest.fixture
def admin(own_engine: EmbeddedEngine) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=own_engine.socket_path, decode_responses=True)
    yield client
    client.close()


@contextlib.contextmanager
def busy(engine: EmbeddedEngine, admin: redis.Redis) -> Iterator[None]:
    """A script that never ends: after busy-reply-threshold the engine answers BUSY to everyone else."""
    admin.config_set("busy-reply-threshold", 50)
    looping = redis.Redis(unix_socket_path=engine.socket_path)

    def loop() -> None:
        with contextlib.suppress(redis.ResponseError):  # "script killed"
            looping.eval("while true do end", 0)

    thread = threading.Thread(target=loop)
    thread.start()
    probe = redis.Redis(unix_socket_path=engine.socket_path)

    def answers_busy() -> bool:
        try:
            probe.ping()
        except redis.ResponseError as exc:
            return str(exc).startswith("BUSY")
        return False

    wait_until(answers_busy, 10, 0.02, "the engine to answer BUSY")
    try:
        yield
    finally:
        probe.script_kill()
        thread.join(10)
        probe.close()
        looping.close()


@contextlib.contextmanager
def out_of_memory(admin: redis.Redis) -> Iterator[None]:
    admin.config_set("maxmemory", 1)
    try:
        yield
    finally:
        admin.config_set("maxmemory", 0)


@contextlib.contextmanager
def replica(admin: redis.Redis, *, stale_reads: bool) -> Iterator[None]:
    """A replica of a master that does not exist: writes are READONLY; without stale reads, all is MASTERDOWN."""
    admin.config_set("replica-serve-stale-data", "yes" if stale_reads else "no")
    admin.replicaof("127.0.0.1", 1)
    try:
        yield
    finally:
        admin.replicaof("no", "one")
        admin.config_set("replica-serve-stale-data", "yes")


@contextlib.asynccontextmanager
async def frames(base: str) -> AsyncIterator[ClientConnection]:
    async with connect(base.replace("http", "ws", 1) + "/ws/jobs") as ws:
        yield ws


async def frame_reply(ws: ClientConnection, command: dict[str, str]) -> dict[str, str]:
    await ws.send(orjson.dumps(command).decode())
    while True:  # messages of the queue may come first
        reply: dict[str, str] = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
        if "cmd" not in reply and ("error" in reply or reply.get("value") == command.get("value")):
            return reply


def assert_unavailable(name: str, response: httpx.Response) -> None:
    assert response.status_code == 503, (name, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", name
    assert response.headers["retry-after"] == "1", name
    assert response.json()["code"] == "BACKEND_UNAVAILABLE", (name, response.text)


REFUSALS = ["BUSY", "OOM", "READONLY", "MASTERDOWN"]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_a_refusing_engine_gives_503s_on_every_route_then_service_again(
    refusal: str, own_engine: EmbeddedEngine, admin: redis.Redis
) -> None:
    faults = {
        "BUSY": lambda: busy(own_engine, admin),
        "OOM": lambda: out_of_memory(admin),
        "READONLY": lambda: replica(admin, stale_reads=True),
        "MASTERDOWN": lambda: replica(admin, stale_reads=False),
    }
    # Under maxmemory the engine still runs what frees memory (takes, purges): only adds are refused.
    refused = {"BUSY": {**WRITES, **READS}, "OOM": ADDS, "READONLY": WRITES, "MASTERDOWN": {**WRITES, **READS}}
    async with run_app(own_engine.url) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.post("/q/jobs", data={"value": "before"})).status_code == 200
        async with frames(base) as ws:
            assert "key" in await frame_reply(ws, {"cmd": "add", "queue": "other", "value": "hello"})  # consuming
            with faults[refusal]():
                for name, call in refused[refusal].items():
                    assert_unavailable(name, await call(http))
                reply = await frame_reply(ws, {"cmd": "add", "queue": "jobs", "value": "refused"})
                assert reply["code"] == "BACKEND_UNAVAILABLE", reply
                # a replica checks READONLY before MASTERDOWN, and a function that writes is a write command
                named = ("MASTERDOWN", "READONLY") if refusal == "MASTERDOWN" else (refusal,)
                assert any(word in reply["error"] for word in named), reply
            reply = await frame_reply(ws, {"cmd": "add", "queue": "other", "value": "served"})
            assert reply.get("key", "").startswith("other:"), reply
        assert (await http.post("/q/jobs", data={"value": "after"})).status_code == 200
        assert (await http.get("/stats/jobs")).status_code == 200
