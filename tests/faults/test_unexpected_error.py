"""An unexpected failure (here a real one: a queue key of the wrong type in the backend, which no
script expects) answers a JSON 500 that carries the request id, is logged once with its traceback,
and leaves the keep-alive connection usable, on uvicorn and granian (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from restmq.storage import keys
from tests.helpers.keepalive import Answer, KeepAlive, keep_alive
from tests.helpers.server import serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVERS = {"uvicorn": [], "granian": ["--server", "granian"]}


def assert_internal(answer: Answer) -> str:
    """A JSON 500 naming its request id; returns the id."""
    assert answer.status == 500, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    rid = answer.headers["x-request-id"]
    body = answer.json()
    assert body["code"] == "INTERNAL"
    assert rid in body["error"]
    return rid


async def assert_still_usable(conn: KeepAlive) -> None:
    assert (await conn.request("GET", "/health")).status == 200


@pytest.mark.parametrize("server", SERVERS)
async def test_an_unexpected_error_is_a_json_500_with_the_request_id_on_a_usable_connection(
    server: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client.set(keys.queue_keys("broken").meta, "not a hash")  # every script on this queue fails
    with serve(["--redis", redis_url, *SERVERS[server]], tmp_path) as process:
        async with keep_alive(process.url) as conn:
            ids = [assert_internal(await conn.add("broken", "x"))]  # the lean direct route
            await assert_still_usable(conn)
            ids.append(assert_internal(await conn.add("broken?priority=2", "x")))  # a direct route's endpoint
            await assert_still_usable(conn)
            ids.append(assert_internal(await conn.request("GET", "/q/broken")))
            await assert_still_usable(conn)
            ids.append(assert_internal(await conn.request("GET", "/stats/broken")))  # through the router
            await assert_still_usable(conn)
            answer = await conn.add("broken", "x", headers={"X-Request-Id": "trace-42"})
            assert assert_internal(answer) == "trace-42"
            ids.append("trace-42")
            await assert_still_usable(conn)
            assert (await conn.add("fine", "x")).status == 200
        log = process.log()
    assert log.count("Traceback") == len(ids), log  # each failure logged once, with its traceback
    for rid in ids:
        assert rid in log
