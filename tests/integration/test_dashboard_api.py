"""The dashboard's server side: its pages, static files, GET /stats/stream and GET /peek/<queue>."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from restmq.config import Settings
from restmq.web.app import create_app
from restmq.web.shutdown import begin_shutdown
from tests.helpers.auth import bearer, create_token_async
from tests.helpers.queues import add
from tests.helpers.server import run_app, serve_app

pytestmark = pytest.mark.integration

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
EVENTS = {"Accept": "text/event-stream"}


async def events(client: httpx.AsyncClient, n: int, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The first `n` events of GET /stats/stream, as (event name, decoded data) dicts."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(15), client.stream("GET", "/stats/stream", headers={**EVENTS, **(headers or {})}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        name = "message"
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                found.append({"event": name, **orjson.loads(line[6:])})
                name = "message"
                if len(found) == n:
                    break
    return found


async def test_the_dashboard_is_served_at_root_and_ui(http: httpx.AsyncClient) -> None:
    await add(http, "orders", "x")
    for path in ("/", "/ui"):
        page = await http.get(path, headers=BROWSER)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/ui/static/dashboard.js">' in page.text
        assert '<a href="/j/orders">orders</a>' in page.text  # the first paint works without JavaScript
        assert "<!--" not in page.text.replace("<!--notice-->", "")


async def test_static_files_are_served_from_the_package(http: httpx.AsyncClient) -> None:
    for name, kind in [("app.js", "javascript"), ("dashboard.js", "javascript"), ("queue.js", "javascript"),
                       ("style.css", "text/css")]:  # fmt: skip
        response = await http.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"], (name, response.headers["content-type"])
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")  # no CDN: works offline
    assert (await http.get("/ui/static/nope.js")).status_code == 404


async def test_stats_stream_sends_the_stats_every_second(http: httpx.AsyncClient) -> None:
    await add(http, "orders", "x")
    first, second = await events(http, 2)
    assert first["event"] == "message" and [q["queue"] for q in first["queues"]] == ["orders"]
    assert first["queues"][0]["length"] == 1 and first["queues"][0]["added"] == 1 and first["count"] == 1
    assert 0.5 <= (second["time"] - first["time"]) / 1000 <= 3
    plain = await http.get("/stats/stream")  # without Accept: text/event-stream, a queue named "stream"
    assert plain.status_code == 200 and plain.json()["queue"] == "stream"


async def test_stats_stream_and_pages_show_only_what_the_token_covers(redis_url: str) -> None:
    admin = await create_token_async(redis_url, "*", "admin")
    reader = await create_token_async(redis_url, "orders.*", "read")
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for queue in ("orders.eu", "audit"):
            assert (await client.post(f"/q/{queue}", data={"value": "x"}, headers=bearer(admin))).status_code == 200
        (event,) = await events(client, 1, bearer(reader))
        assert [q["queue"] for q in event["queues"]] == ["orders.eu"]
        via_query = client.stream("GET", "/stats/stream", params={"token": reader}, headers=EVENTS)
        async with via_query as response:  # EventSource cannot send headers
            assert response.status_code == 200
        async with client.stream("GET", "/stats/stream", headers=EVENTS) as response:
            assert response.status_code == 401
        page = await client.get("/", headers={**BROWSER, **bearer(reader)})
        assert "orders.eu" in page.text and "audit" not in page.text


async def test_a_browser_without_credentials_gets_the_page_that_asks_for_a_token(redis_url: str) -> None:
    await create_token_async(redis_url, "*", "admin")
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for path in ("/", "/ui", "/j/orders"):
            page = await client.get(path, headers=BROWSER)
            assert page.status_code == 401 and page.headers["content-type"].startswith("text/html"), path
            assert "Paste a token above" in page.text
            assert page.headers["www-authenticate"] == 'Bearer realm="restmq"'  # no Basic: no browser login box
            api = await client.get(path)  # any other client: the JSON error, as on every route
            assert api.status_code == 401 and api.json()["code"] == "UNAUTHORIZED"
        async with client.stream("GET", "/stats/stream", headers=EVENTS) as refused:
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="restmq"'


async def test_peek_shows_the_newest_without_delivering(http: httpx.AsyncClient) -> None:
    for value in ("a", "b", "c"):
        await add(http, "jobs", value)
    peek = await http.get("/peek/jobs", params={"limit": 2})
    assert peek.status_code == 200 and peek.headers["cache-control"] == "no-store"
    body = peek.json()
    assert body["queue"] == "jobs" and [m["key"] for m in body["messages"]] == ["jobs:3", "jobs:2"]
    assert body["stats"]["length"] == 3 and body["stats"]["delivered"] == 0
    again = (await http.get("/peek/jobs")).json()
    assert [m["count"] for m in again["messages"]] == [0, 0, 0] and again["stats"]["delivered"] == 0
    assert (await http.get("/q/jobs")).json()["value"] == "a"  # still there, first in line
    # (with --jsonp, callback= wraps it: tests/integration/test_jsonp.py)


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"callback": "show"}])
async def test_peek_refuses_bad_parameters(http: httpx.AsyncClient, query: dict[str, str]) -> None:
    response = await http.get("/peek/jobs", params=query)
    assert response.status_code == 400 and response.json()["code"] in ("PARAMETER_INVALID", "JSONP_DISABLED")
    assert (await http.get("/peek/bad%20name")).json()["code"] == "QUEUE_NAME_INVALID"


async def test_peek_needs_the_read_right(redis_url: str) -> None:
    writer = await create_token_async(redis_url, "*", "write")
    async with run_app(redis_url) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await client.get("/peek/jobs", headers=bearer(writer))).status_code == 403
        assert (await client.get("/peek/jobs")).status_code == 401


@pytest.fixture
async def own_server(redis_url: str) -> AsyncIterator[tuple[str, Starlette]]:
    app = create_app(Settings(redis=(redis_url,)))
    async with serve_app(app) as url:
        yield url, app


async def test_an_open_stats_stream_ends_when_the_server_stops(own_server: tuple[str, Starlette]) -> None:
    url, app = own_server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("GET", "/stats/stream", headers=EVENTS) as response:
            lines = response.aiter_lines()
            async with asyncio.timeout(10):
                while not (await anext(lines)).startswith("data: "):
                    pass
                begin_shutdown(app)  # what SIGTERM does first: the stream says "reconnect soon" and ends
                rest = [line async for line in lines]
    assert "retry: 250" in rest
