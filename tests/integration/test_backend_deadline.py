"""--backend-timeout bounds a request's backend work, not the time a request may rightly take: a
long-poll waits its whole `wait`, and a dashboard's event stream, whose backend calls run in the
request's own task, keeps going long after the deadline of its start (issue 14)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.helpers.auth import bearer, create_token_async
from tests.helpers.queues import add
from tests.helpers.server import run_app
from tests.integration.test_dashboard_api import events

pytestmark = pytest.mark.integration

DEADLINE = 0.5


async def test_a_long_poll_waits_past_the_deadline_and_gets_its_message(redis_url: str) -> None:
    async with run_app(redis_url, backend_timeout=DEADLINE) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        began = time.monotonic()
        poll = asyncio.create_task(http.get("/q/late", params={"wait": 10}))
        await asyncio.sleep(4 * DEADLINE)  # the long-poll waits: no backend work, nothing to cut
        assert not poll.done()
        key = await add(http, "late", "worth the wait")
        reply = await poll
        assert reply.status_code == 200, reply.text
        assert reply.json()["key"] == key
        assert time.monotonic() - began >= 4 * DEADLINE


async def test_a_dashboard_stream_outlives_the_deadline_of_its_start(redis_url: str) -> None:
    """The stream checks the caller's token again at each event, reading it from the backend when the 5 s
    cache runs out. Where the server runs a streamed body in the request's own task (ASGI spec 2.4; uvicorn
    and granian say 2.3, and Starlette gives the body a task of its own), each such call gets the whole
    budget once the answer has begun (deadline.answering), not what was left of the request's."""
    token = await create_token_async(redis_url, "*", "read")
    async with run_app(redis_url, backend_timeout=DEADLINE) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        found = await events(http, 8, bearer(token))  # one a second: well past the token cache's 5 s
    assert [event for event in found if event["event"] != "message"] == []
