"""acl.conf on a real server: host rules, HTTP Basic, the WebSocket cookie, and which route belongs
to which category. In-process requests come from 127.0.0.1; other addresses are in tests/unit/test_acl.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import HTTPConnection

from restmq.storage.node import RedisStore
from restmq.web.acl_file import load_acl
from restmq.web.auth import CATEGORIES, COMET, CONSUMER, PRODUCER, WEBSOCKET, Access
from tests.helpers.auth import basic, create_token_async, restmq_cli, write_acl, ws_session
from tests.helpers.queues import add, drain
from tests.helpers.server import run_app
from tests.helpers.streams import ws_url

pytestmark = pytest.mark.integration

Call = Callable[[httpx.AsyncClient], Awaitable[int]]


def request(method: str, path: str, **kwargs: Any) -> Call:
    async def call(client: httpx.AsyncClient) -> int:
        response = await client.request(method, path, **kwargs)
        if response.status_code in (401, 403):
            body = response.json()
            assert set(body) == {"error", "code"}, body
        return response.status_code

    return call


def stream(path: str, headers: dict[str, str] | None = None) -> Call:
    async def call(client: httpx.AsyncClient) -> int:
        async with client.stream("GET", path, headers=headers) as response:
            return response.status_code

    return call


def cmd(command: str, **fields: str) -> Call:
    return request("POST", "/queue", json={"cmd": command, "queue": "jobs", **fields})


ROUTES: dict[str, list[tuple[str, Call]]] = {
    PRODUCER: [
        ("POST /q/<q>", request("POST", "/q/jobs", data={"value": "x"})),
        ("POST / (form)", request("POST", "/", data={"queue": "jobs", "value": "x"})),
        ("POST /queue add", cmd("add", value="x")),
        ("DELETE /q/<q>", request("DELETE", "/q/jobs")),
        ("POST /p/<q>", request("POST", "/p/jobs", data={"policy": "broadcast"})),
        ("POST /control/<q>", request("POST", "/control/jobs", data={"status": "start"})),
        ("POST /q/<q>:dead/redrive", request("POST", "/q/jobs:dead/redrive")),
    ],
    CONSUMER: [
        ("GET /q/<q>", request("GET", "/q/jobs")),
        ("GET /?queue=<q>", request("GET", "/", params={"queue": "jobs"})),
        ("GET / (dashboard)", request("GET", "/")),
        ("POST /queue get", cmd("get")),
        ("POST /queue take", cmd("take")),
        ("POST /queue del", cmd("del", key="jobs:1")),
        ("DELETE /q/<q>/<key> (ack)", request("DELETE", "/q/jobs/jobs:1")),
        ("POST release", request("POST", "/q/jobs/jobs:1/release")),
        ("POST extend", request("POST", "/q/jobs/jobs:1/extend", params={"lease": "5"})),
        ("GET /stats/", request("GET", "/stats/")),
        ("GET /stats", request("GET", "/stats")),
        ("GET /stats/<q>", request("GET", "/stats/jobs")),
        ("GET /j/<q>", request("GET", "/j/jobs")),
        ("GET /metrics", request("GET", "/metrics")),
        ("GET /q/", request("GET", "/q/")),
        ("GET /q", request("GET", "/q")),
        ("GET /p/<q>", request("GET", "/p/jobs")),
        ("GET /control/<q>", request("GET", "/control/jobs")),
        ("GET /ui", request("GET", "/ui")),
        ("GET /peek/<q>", request("GET", "/peek/jobs")),
        ("GET /stats/stream", stream("/stats/stream", {"Accept": "text/event-stream"})),
    ],
    COMET: [
        ("GET /c/<q>", stream("/c/jobs")),
        ("GET /c/<q> (SSE)", stream("/c/jobs", {"Accept": "text/event-stream"})),
        ("GET /sse/<q>", stream("/sse/jobs")),
    ],
}
OPEN = [("GET /health", request("GET", "/health")), ("GET /ready", request("GET", "/ready"))]


async def ws_close_code(base: str, queue: str = "jobs", headers: dict[str, str] | None = None) -> int | None:
    """Close code of a WebSocket that the server refuses (1008), or None when it was accepted."""
    outcome = await ws_session(ws_url(base, queue), headers=headers, send=['{"cmd":"get"}'], expect_frames=1)
    if outcome.frames:
        return None  # the command got a reply (maybe "empty queue"): the connection was accepted
    assert outcome.close_code is not None, outcome
    return outcome.close_code


@contextlib.asynccontextmanager
async def acl_app(redis_url: str, tmp_path: Path, text: str) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app(redis_url, acl=write_acl(tmp_path, text)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield client


@pytest.mark.parametrize("denied", [PRODUCER, CONSUMER, COMET, WEBSOCKET])
async def test_every_route_belongs_to_its_category(redis_url: str, tmp_path: Path, denied: str) -> None:
    """Deny 127.0.0.1 in one section: exactly that category's routes answer 403."""
    async with acl_app(redis_url, tmp_path, f"[{denied}]\nhosts_deny = 127.0.0.1\n") as client:
        seen: dict[str, int] = {}
        for category, calls in ROUTES.items():
            for name, call in calls:
                status = await call(client)
                seen[name] = status
                if category == denied:
                    assert status == 403, f"{name} should be {category}: got {status}"
                else:
                    assert status != 403 and status < 500, f"{name} is not {denied}: got {status}"
        for name, call in OPEN:
            assert await call(client) == 200, name
        code = await ws_close_code(str(client.base_url))
        assert code == (1008 if denied == WEBSOCKET else None), code


async def test_deny_wins_over_allow(redis_url: str, tmp_path: Path) -> None:
    text = "[rest:producer]\nhosts_allow = 127.0.0.0/8\nhosts_deny = 127.0.0.1\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        response = await client.post("/q/jobs", data={"value": "x"})
        assert response.status_code == 403
        assert response.json() == {"error": "127.0.0.1 may not use rest:producer", "code": "FORBIDDEN"}
        assert (await client.get("/q/jobs")).status_code == 204  # the consumer section is missing: open


async def test_a_non_empty_allow_list_admits_only_what_it_lists(redis_url: str, tmp_path: Path) -> None:
    text = "[rest:producer]\nhosts_allow = 127.0.0.10, 10.0.0.0/8\n[rest:consumer]\nhosts_allow = 127.0.0.0/30\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        assert (await client.post("/q/jobs", data={"value": "x"})).status_code == 403
        assert (await client.get("/q/jobs")).status_code == 204


async def test_missing_sections_are_open(redis_url: str, tmp_path: Path) -> None:
    async with acl_app(redis_url, tmp_path, "[rest:producer]\n") as client:
        key = await add(client, "jobs", "hello")
        assert (await client.get("/q/jobs")).json()["key"] == key
        assert await ws_close_code(str(client.base_url)) is None


async def test_basic_auth_right_wrong_missing(redis_url: str, tmp_path: Path) -> None:
    text = "[rest:producer]\nusername = producer\npassword = s3cret\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        missing = await client.post("/q/jobs", data={"value": "x"})
        assert missing.status_code == 401
        assert missing.json() == {"error": "rest:producer needs valid credentials", "code": "UNAUTHORIZED"}
        assert "Basic" in missing.headers["www-authenticate"]
        for user, password in [("producer", "wrong"), ("other", "s3cret"), ("producer", ""), ("", "")]:
            wrong = await client.post("/q/jobs", data={"value": "x"}, headers=basic(user, password))
            assert wrong.status_code == 401 and wrong.json()["code"] == "UNAUTHORIZED", (user, password)
            assert "www-authenticate" in wrong.headers
        malformed = await client.post("/q/jobs", data={"value": "x"}, headers={"Authorization": "Basic %%%"})
        assert malformed.status_code == 400 and malformed.json()["code"] == "AUTH_INVALID"
        right = await client.post("/q/jobs", data={"value": "ok"}, headers=basic("producer", "s3cret"))
        assert right.status_code == 200, right.text
        via_httpx_auth = await client.post("/q/jobs", data={"value": "ok2"}, auth=("producer", "s3cret"))
        assert via_httpx_auth.status_code == 200
        assert [m["value"] for m in await drain(client, "jobs")] == ["ok", "ok2"]  # consumers: no section, open


async def test_a_denied_host_gets_403_even_with_the_right_credentials(redis_url: str, tmp_path: Path) -> None:
    text = "[rest:producer]\nhosts_deny = 127.0.0.1\nusername = producer\npassword = s3cret\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        for headers in ({}, basic("producer", "s3cret"), basic("producer", "bad")):
            response = await client.post("/q/jobs", data={"value": "x"}, headers=headers)
            assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


async def test_streams_need_their_section_credentials(redis_url: str, tmp_path: Path) -> None:
    text = "[comet:consumer]\nusername = c\npassword = p\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        for path in ("/c/jobs", "/sse/jobs"):
            async with client.stream("GET", path) as response:
                assert response.status_code == 401
                await response.aread()
                assert response.json()["code"] == "UNAUTHORIZED"
            async with client.stream("GET", path, auth=("c", "p")) as response:
                assert response.status_code == 200


async def test_websocket_cookie_and_basic(redis_url: str, tmp_path: Path) -> None:
    text = "[websocket:consumer]\nusername = ws\npassword = secret\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        base = str(client.base_url)
        await add(client, "jobs", "for the cookie")
        assert await ws_close_code(base) == 1008
        assert await ws_close_code(base, headers={"Cookie": "auth=ws:wrong"}) == 1008
        assert await ws_close_code(base, headers={"Cookie": "auth=wssecret"}) == 1008
        accepted = await ws_session(
            ws_url(base, "jobs"), headers={"Cookie": "auth=ws:secret"}, send=['{"cmd":"take"}'], expect_frames=1
        )
        assert accepted.frames[0]["value"] == "for the cookie"
        assert await ws_close_code(base, headers=basic("ws", "secret")) is None
        # The cookie is a WebSocket thing only: it does not open HTTP routes.
        async with acl_app(redis_url, tmp_path, "[rest:consumer]\nusername = ws\npassword = secret\n") as other:
            response = await other.get("/q/jobs", headers={"Cookie": "auth=ws:secret"})
            assert response.status_code == 401


async def test_acl_and_tokens_together(redis_url: str, tmp_path: Path) -> None:
    """Host rules apply to token holders too; Basic credentials of a section still work beside tokens."""
    token = await create_token_async(redis_url, "jobs", "read,write")
    text = "[rest:producer]\nusername = producer\npassword = s3cret\n[comet:consumer]\nhosts_deny = 127.0.0.1\n"
    async with acl_app(redis_url, tmp_path, text) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/q/jobs", data={"value": "t"}, headers=auth)).status_code == 200
        assert (
            await client.post("/q/jobs", data={"value": "b"}, headers=basic("producer", "s3cret"))
        ).status_code == 200
        assert (await client.get("/q/jobs")).status_code == 401  # tokens exist: a consumer needs one
        assert (await client.get("/q/jobs", headers=auth)).status_code == 200
        async with client.stream("GET", "/sse/jobs", headers=auth) as response:
            assert response.status_code == 403


@pytest.mark.parametrize(
    "text",
    [
        "[rest:admin]\n",
        "[rest:producer]\nhosts_allow = 10.0.0.0/99\n",
        "[rest:producer]\npassword = secret\n",  # a username alone is 2010 syntax (tests/unit/test_acl_file.py)
        "[rest:consumer]\nhosts = 127.0.0.1\n",
        "hosts_allow = 127.0.0.1\n",
    ],
)
async def test_a_bad_acl_file_stops_start_up(redis_url: str, tmp_path: Path, text: str) -> None:
    path = write_acl(tmp_path, text)
    with pytest.raises(ValueError, match="acl.conf"):
        async with run_app(redis_url, acl=path):
            pass


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rest:admin]\n", "unknown section [rest:admin]"),
        ("[rest:producer]\nhosts_allow = 300.1.1.1\n", "'300.1.1.1' is not an address or CIDR network"),
        ("[rest:producer]\npassword = x\n", "username and password go together"),
        ("[rest:producer]\nhosts_alow = 127.0.0.1\n", "unknown keys hosts_alow"),
        ("no sections = here\n", "no section headers"),
    ],
)
def test_serve_refuses_a_bad_acl_file_with_a_clear_message(
    redis_url: str, tmp_path: Path, text: str, message: str
) -> None:
    path = write_acl(tmp_path, text)
    result = restmq_cli("serve", "--redis", redis_url, "--port", "0", "--acl", path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "--acl" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_access_check_with_the_backend(store: RedisStore, redis_url: str, tmp_path: Path) -> None:
    """Access.check on constructed connections from other addresses, with the real token store."""
    acl = load_acl(write_acl(tmp_path, "[rest:consumer]\nhosts_allow = 10.0.0.1, 192.168.0.0/24\n"))
    access = Access(store, acl, cache_seconds=0)

    def conn(client: str, headers: dict[str, str] | None = None) -> HTTPConnection:
        raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        return HTTPConnection({"type": "http", "headers": raw, "query_string": b"", "client": (client, 1)})

    assert await access.check(conn("10.0.0.1"), CONSUMER, "q", "read") is None
    assert await access.check(conn("192.168.0.255"), CONSUMER, "q", "read") is None
    assert await access.check(conn("10.0.0.12"), PRODUCER, "q", "write") is None  # no producer section
    for denied in ("10.0.0.12", "10.0.0.10", "192.168.1.0"):
        with pytest.raises(Exception, match="may not use rest:consumer"):
            await access.check(conn(denied), CONSUMER, "q", "read")
    token = await create_token_async(redis_url, "q", "read")
    with pytest.raises(Exception, match="bearer token is required"):
        await access.check(conn("10.0.0.1"), CONSUMER, "q", "read")
    record = await access.check(conn("10.0.0.1", {"Authorization": f"Bearer {token}"}), CONSUMER, "q", "read")
    assert record is not None and record.queues == ("q",)
    assert set(CATEGORIES) == {PRODUCER, CONSUMER, COMET, WEBSOCKET}


async def test_websocket_frames_do_not_bypass_the_producer_section(redis_url: str, tmp_path: Path) -> None:
    async with acl_app(redis_url, tmp_path, "[rest:producer]\nhosts_deny = 127.0.0.1\n") as client:
        frames = ['{"cmd":"add","value":"sneaked in"}']
        outcome = await ws_session(ws_url(str(client.base_url), "other"), send=frames, expect_frames=1)
        assert outcome.frames[0].get("code") == "FORBIDDEN", outcome.frames


async def test_made_up_tokens_do_not_grow_the_cache_without_bound(store: RedisStore) -> None:
    access = Access(store, {})
    for i in range(10_050):
        conn = HTTPConnection({"type": "http", "headers": [], "query_string": f"token=rmq_{i:012x}_s".encode()})
        with pytest.raises(Exception, match="invalid, expired or revoked token"):
            await access.check(conn, CONSUMER, "q", "read")
    assert len(access._records) <= 10_000
