"""The backend going away: 503 with a JSON error, the server stays up and recovers by itself (SPEC section 6)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.queues import add, subscribers
from tests.helpers.server import run_app, serve
from tests.helpers.wait import wait_for, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(own_engine: EmbeddedEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(own_engine.url) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == "BACKEND_UNAVAILABLE"
    assert isinstance(body["error"], str) and body["error"]
    assert response.headers["Retry-After"] == "1"


async def test_requests_get_503_while_the_backend_is_down(
    client: httpx.AsyncClient, own_engine: EmbeddedEngine
) -> None:
    await add(client, "jobs", "before the outage")
    own_engine.stop()
    assert_unavailable(await client.post("/q/jobs", data={"value": "during"}))
    assert_unavailable(await client.post("/q/jobs", json=["during"]))
    assert_unavailable(await client.get("/q/jobs"))
    assert_unavailable(await client.get("/q/jobs", params={"count": 5}))
    assert_unavailable(await client.get("/", params={"queue": "jobs"}))
    assert_unavailable(await client.post("/queue", json={"cmd": "take", "queue": "jobs"}))
    assert_unavailable(await client.delete("/q/jobs"))
    assert_unavailable(await client.get("/q/"))
    assert_unavailable(await client.get("/stats/jobs"))
    assert_unavailable(await client.post("/control/jobs", data={"status": "stop"}))


async def test_health_stays_up_and_ready_reports_the_outage(
    client: httpx.AsyncClient, own_engine: EmbeddedEngine
) -> None:
    assert (await client.get("/ready")).status_code == 200
    own_engine.stop()
    assert (await client.get("/health")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


async def test_the_server_recovers_by_itself_with_the_data(
    client: httpx.AsyncClient, own_engine: EmbeddedEngine
) -> None:
    key = await add(client, "jobs", "before the outage")
    own_engine.stop()
    assert_unavailable(await client.get("/q/jobs"))
    own_engine.start()

    async def accepts_adds() -> bool:
        return (await client.post("/q/jobs", data={"value": "after"})).status_code == 200

    await wait_for(accepts_adds, timeout=10, what="adds to work again")
    assert (await client.get("/ready")).status_code == 200
    assert (await client.get("/q/jobs")).json() == {"key": key, "value": "before the outage", "count": 1}
    assert (await client.get("/q/jobs")).json()["value"] == "after"
    assert (await client.get("/stats/jobs")).json()["length"] == 0


async def test_a_long_poll_in_flight_fails_fast_when_the_backend_goes(
    client: httpx.AsyncClient, own_engine: EmbeddedEngine
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(client.get("/q/jobs", params={"wait": 30}))

    with redis.Redis(unix_socket_path=own_engine.socket_path) as backend:

        async def subscribed() -> bool:
            return subscribers(backend, "jobs") > 0

        await wait_for(subscribed, timeout=5, what="the long-poll to subscribe")
    assert not poll.done()
    own_engine.stop()
    assert_unavailable(await poll)
    assert time.monotonic() - started < 15


async def test_long_polls_work_again_after_recovery(client: httpx.AsyncClient, own_engine: EmbeddedEngine) -> None:
    own_engine.stop()
    own_engine.start()

    async def answers() -> bool:
        return (await client.get("/q/jobs")).status_code == 204

    await wait_for(answers, timeout=10, what="reads to work again")
    poll = asyncio.create_task(client.get("/q/jobs", params={"wait": 10}))
    await add(client, "jobs", "wake")
    assert (await poll).json()["value"] == "wake"


@pytest.mark.slow  # a `restmq serve` subprocess
def test_a_serve_process_on_an_external_backend_survives_an_outage(tmp_path: Path) -> None:
    engine = EmbeddedEngine(tmp_path / "engine")
    engine.start()
    try:
        with serve(["--redis", engine.url], tmp_path) as process, httpx.Client(base_url=process.url) as http:
            assert http.post("/q/jobs", data={"value": "kept"}).text == "jobs:1\r\n"
            engine.stop()
            assert_unavailable(http.get("/q/jobs"))
            assert http.get("/health").status_code == 200
            assert process.proc.poll() is None
            engine.start()
            wait_until(lambda: http.get("/ready").status_code == 200, timeout=10, what="/ready to recover")
            wait_until(lambda: http.get("/stats/jobs").status_code == 200, timeout=10, what="reads to recover")
            assert http.get("/q/jobs").json() == {"key": "jobs:1", "value": "kept", "count": 1}
    finally:
        engine.stop()
