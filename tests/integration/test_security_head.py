"""Issue 13: HEAD never takes, leases or streams a message, on any route and on both HTTP servers.

Starlette answers HEAD with the GET route, so `HEAD /?queue=q` popped a message and `HEAD /c/q` opened
a stream that consumed the backlog, every message lost to a client that never sees a body. Now every
route that hands out messages answers HEAD from the queue's statistics: the status a GET would have
(200 when a message is ready), its headers, and no body, no stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.auth import bearer, create_token
from tests.helpers.server import ServeProcess, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALUES = [f"m{i}" for i in range(3)]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def server_process(
    request: pytest.FixtureRequest, engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    args = ["--redis", engine.url, "--server", request.param]
    with serve(args, tmp_path_factory.mktemp(f"head-{request.param}"), request.param) as process:
        yield process


@pytest.fixture
def http(server_process: ServeProcess, redis_url: str) -> Iterator[httpx.Client]:
    """A client of the module's server, over a freshly flushed engine (`redis_url` flushes it)."""
    with httpx.Client(base_url=server_process.url, timeout=20) as client:
        yield client


def fill(http: httpx.Client, queue: str) -> None:
    for value in VALUES:
        assert http.post(f"/q/{queue}", data={"value": value}).status_code == 200


def assert_untouched(http: httpx.Client, queue: str) -> None:
    """Nothing was delivered: once no consumer is connected, every message is still there, in order."""

    def no_consumers() -> bool:
        return bool(http.get(f"/stats/{queue}").json()["consumers"] == 0)

    wait_until(no_consumers, 20, 0.02, f"no consumer on {queue}")
    stats = http.get(f"/stats/{queue}").json()
    assert (stats["length"], stats["leased"], stats["delivered"]) == (len(VALUES), 0, 0), stats
    taken = http.get(f"/q/{queue}", params={"count": len(VALUES) + 1})
    assert [m["value"] for m in taken.json()] == VALUES


@pytest.mark.parametrize(
    ("path", "params", "ready", "empty"),
    [
        ("/", {"queue": "jobs"}, 200, 404),
        ("/q/jobs", {}, 200, 204),
        ("/q/jobs", {"count": "3"}, 200, 204),
        ("/q/jobs", {"lease": "30"}, 200, 204),
        ("/q/jobs", {"lease": "30", "count": "2"}, 200, 204),
    ],
    ids=["index", "q", "q-count", "q-lease", "q-lease-count"],
)
def test_head_on_a_reading_route_takes_nothing(
    http: httpx.Client, path: str, params: dict[str, str], ready: int, empty: int
) -> None:
    assert http.head(path, params=params).status_code == empty
    fill(http, "jobs")
    for _ in range(len(VALUES) + 1):
        reply = http.head(path, params=params)
        assert reply.status_code == ready and reply.content == b""
        assert reply.headers["cache-control"] == "no-store"
    assert_untouched(http, "jobs")


def test_head_with_wait_answers_at_once(http: httpx.Client) -> None:
    started = time.monotonic()
    assert http.head("/q/idle", params={"wait": "10"}).status_code == 204
    assert time.monotonic() - started < 5


def test_head_on_a_stopped_queue_says_so(http: httpx.Client) -> None:
    fill(http, "jobs")
    assert http.post("/control/jobs", data={"status": "stop"}).status_code == 200
    reply = http.head("/q/jobs")
    assert (reply.status_code, reply.headers.get("x-restmq-status")) == (204, "stop")
    assert http.head("/", params={"queue": "jobs"}).status_code == 404
    assert http.post("/control/jobs", data={"status": "start"}).status_code == 200
    assert_untouched(http, "jobs")


@pytest.mark.parametrize(
    ("path", "headers", "media"),
    [
        ("/c/jobs", {}, "application/x-ndjson"),
        ("/c/jobs", SSE, "text/event-stream"),
        ("/sse/jobs", {}, "text/event-stream"),
        ("/sse/jobs", {"Last-Event-ID": "jobs:1"}, "text/event-stream"),
    ],
    ids=["comet", "comet-sse", "sse", "sse-replay"],
)
@pytest.mark.parametrize("policy", ["broadcast", "roundrobin"])
def test_head_on_a_stream_answers_headers_and_opens_no_stream(
    http: httpx.Client, path: str, headers: dict[str, str], media: str, policy: str
) -> None:
    assert http.post("/p/jobs", data={"policy": policy}).status_code == 200
    fill(http, "jobs")
    for lease in ({}, {"lease": "30"}):
        reply = http.head(path, headers=headers, params=lease)
        assert reply.status_code == 200 and reply.content == b""
        assert reply.headers["content-type"].startswith(media)
    assert_untouched(http, "jobs")


@pytest.mark.parametrize("path", ["/peek/jobs", "/j/jobs", "/stats/jobs", "/p/jobs", "/control/jobs", "/q/"])
def test_head_on_a_read_only_route_answers_as_get_does(http: httpx.Client, path: str) -> None:
    fill(http, "jobs")
    reply = http.head(path)
    assert reply.status_code == 200 and reply.content == b""
    assert reply.headers["content-type"] == http.get(path).headers["content-type"]
    assert_untouched(http, "jobs")


def test_head_on_the_stats_stream_opens_no_stream(http: httpx.Client) -> None:
    reply = http.head("/stats/stream", headers=SSE)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")


def test_head_still_needs_the_right_to_read(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path / "engine") as own:  # its own engine: the tokens stay out of the shared one
        writer = create_token(own.url, "*", "write")
        reader = create_token(own.url, "*", "read")
        with serve(["--redis", own.url], tmp_path) as server, httpx.Client(base_url=server.url, timeout=20) as http:
            http.headers.update(bearer(writer))
            fill(http, "jobs")
            for path, params in (("/q/jobs", {}), ("/", {"queue": "jobs"}), ("/c/jobs", {}), ("/sse/jobs", {})):
                assert http.head(path, params=params, headers={"Authorization": ""}).status_code == 401
                assert http.head(path, params=params).status_code == 403
                assert http.head(path, params=params, headers=bearer(reader)).status_code == 200
            http.headers.update(bearer(reader))
            assert_untouched(http, "jobs")
