"""Addresses a server can trust, and connections bounded in time (issue 13), on real `restmq serve`
processes, uvicorn and granian alike.

- X-Forwarded-For/-Proto are believed only from the proxies --forwarded-allow-ips names; from them
  an address that cannot be parsed is a 400, never an allow.
- `--host ::` listens on IPv6 and IPv4 on every path (uvicorn, uvicorn --workers 2, granian), and an
  IPv4 client, seen as ::ffff:a.b.c.d, is matched by IPv4 rules. These run in a private network
  namespace with only lo up.
- A body that trickles in never holds its connection: after the response (or the 408 for a body
  that came too slowly) the server closes it, and /health answers while hundreds of such
  connections are being opened against a server with few file descriptors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers.auth import restmq_cli, write_acl
from tests.helpers.netns import run_python_isolated
from tests.helpers.rawhttp import closed_by_server, raw_connection, read_response, trickle
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import ws_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVERS = {"uvicorn": [], "granian": ["--server", "granian"]}

# The consumer section refuses the loopback network (where the tests connect from) and 8.8.4.4;
# only 127.0.0.1 may add.
ACL = """
[rest:producer]
hosts_allow = 127.0.0.1
[rest:consumer]
hosts_deny = 127.0.0.0/8, 8.8.4.4
"""


@pytest.fixture(params=list(SERVERS))
def server_args(request: pytest.FixtureRequest) -> list[str]:
    return SERVERS[request.param]


@pytest.fixture
def acl(tmp_path: Path) -> str:
    return write_acl(tmp_path, ACL)


def get_as(server: ServeProcess, forwarded_for: str | None = None, **headers: str) -> httpx.Response:
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(server.url + "/q/jobs", headers=headers, timeout=10)


def redirect_scheme(server: ServeProcess, **headers: str) -> str:
    """The scheme of the absolute URL the server redirects /health/ to (the scheme it believes)."""
    response = httpx.get(server.url + "/health/", headers=headers, timeout=10)
    assert response.status_code == 307, response.text
    return response.headers["location"].partition("://")[0]


async def stream_status(server: ServeProcess, stack: list[httpx.Response], client: httpx.AsyncClient, **h: str) -> int:
    """Open GET /sse/jobs and keep it open (in `stack`) when it was accepted; return its status."""
    request = client.build_request("GET", server.url + "/sse/jobs", headers=h)
    response = await client.send(request, stream=True)
    if response.status_code == 200:
        stack.append(response)
    else:
        await response.aread()
        await response.aclose()
    return response.status_code


# -- proxy headers: X-Forwarded-For and X-Forwarded-Proto ------------------------------------------


async def test_forwarded_headers_from_a_peer_that_is_not_a_named_proxy_are_ignored(
    redis_url: str, tmp_path: Path, acl: str, server_args: list[str]
) -> None:
    """Issue 13: X-Forwarded-For from 127.0.0.1 chose the address the ACL and the stream limit saw."""
    args = ["--redis", redis_url, "--acl", acl, "--max-streams-per-client", "1", *server_args]
    with serve(args, tmp_path) as server:
        assert get_as(server).status_code == 403
        assert get_as(server, "8.8.8.8").status_code == 403  # not a way past hosts_deny = 127.0.0.0/8
        assert get_as(server, "garbage").status_code == 403  # not an address: not "allowed" either
        assert get_as(server, "8.8.8.8", **{"X-Real-IP": "8.8.8.8", "Forwarded": "for=8.8.8.8"}).status_code == 403
        assert redirect_scheme(server, **{"X-Forwarded-Proto": "https"}) == "http"

        held: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            try:
                assert await stream_status(server, held, client) == 200
                assert await stream_status(server, held, client, **{"X-Forwarded-For": "8.8.8.8"}) == 503
            finally:
                for response in held:
                    await response.aclose()


async def test_a_named_proxy_sets_the_client_address_and_scheme(
    redis_url: str, tmp_path: Path, acl: str, server_args: list[str]
) -> None:
    """Issue 13: --forwarded-allow-ips names the proxies; the client is the right-most address of
    X-Forwarded-For that is not one of them, and IPv4-mapped forwarded addresses are IPv4."""
    args = ["--redis", redis_url, "--acl", acl, "--max-streams-per-client", "1", *server_args]
    args += ["--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8"]
    with serve(args, tmp_path) as server:
        added = httpx.post(server.url + "/q/jobs", data={"value": "one"}, timeout=10)
        assert added.status_code == 200, added.text
        refused = httpx.post(server.url + "/q/jobs", data={"value": "x"}, headers={"X-Forwarded-For": "8.8.8.8"})
        assert refused.status_code == 403  # the client behind the proxy is not the proxy

        assert get_as(server).status_code == 403  # the proxy's own requests: its own address
        assert get_as(server, "8.8.4.4").status_code == 403
        assert get_as(server, "8.8.8.8, 8.8.4.4").status_code == 403  # the left part is the client's to forge
        assert get_as(server, "8.8.4.4, 10.1.2.3").status_code == 403  # proxies on the way are skipped
        assert get_as(server, "::ffff:8.8.4.4").status_code == 403
        got = get_as(server, "8.8.8.8, 10.1.2.3")
        assert got.status_code == 200 and got.json()["value"] == "one", got.text
        assert get_as(server, "[2001:db8::1]:4711").status_code == 204  # bracketed, with a port

        assert redirect_scheme(server) == "http"
        assert redirect_scheme(server, **{"X-Forwarded-Proto": "https"}) == "https"

        held: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            try:
                assert await stream_status(server, held, client, **{"X-Forwarded-For": "8.8.8.8"}) == 200
                assert await stream_status(server, held, client, **{"X-Forwarded-For": "8.8.8.8"}) == 503
                assert await stream_status(server, held, client, **{"X-Forwarded-For": "8.8.8.9"}) == 200
            finally:
                for response in held:
                    await response.aclose()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "garbage"},
        {"X-Forwarded-For": "8.8.8.8, garbage"},
        {"X-Forwarded-For": "8.8.8.8,,10.1.2.3"},
        {"X-Forwarded-For": "999.1.2.3"},
        {"X-Forwarded-For": "unknown"},
        {"X-Forwarded-Proto": "gopher"},
    ],
    ids=["word", "one-bad-entry", "empty-entry", "bad-octet", "unknown", "bad-proto"],
)
async def test_an_unparsable_forwarded_header_from_a_named_proxy_is_400(
    redis_url: str, tmp_path: Path, acl: str, server_args: list[str], headers: dict[str, str]
) -> None:
    """Issue 13: what a named proxy forwards and cannot be parsed is refused, never allowed; a
    WebSocket handshake is refused before it is accepted."""
    args = ["--redis", redis_url, "--acl", acl, "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8", *server_args]
    with serve(args, tmp_path) as server:
        for method in ("GET", "POST"):
            response = httpx.request(method, server.url + "/q/jobs", headers=headers, data={"value": "x"}, timeout=10)
            assert response.status_code == 400, response.text
            assert response.json() == {"error": response.json()["error"], "code": "FORWARDED_INVALID"}
        assert httpx.get(server.url + "/stats/jobs", headers={"X-Forwarded-For": "8.8.8.8"}).json()["added"] == 0
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(server.url, "jobs"), additional_headers=headers, open_timeout=10):
                pass
        assert refused.value.response.status_code == 403


@pytest.mark.parametrize("value", ["*", "10.0.0.1,proxy.example", "10.0.0.0/33"])
def test_serve_refuses_a_proxy_list_it_cannot_parse(value: str) -> None:
    """Issue 13: a mistyped --forwarded-allow-ips stops start-up instead of trusting nobody, or anybody."""
    result = restmq_cli("serve", "--redis", "redis://127.0.0.1:1", "--forwarded-allow-ips", value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value for --forwarded-allow-ips" in result.stderr and "Traceback" not in result.stderr


# -- dual-stack listening and IPv4-mapped peers ----------------------------------------------------

PATHS = {
    "uvicorn": [],
    "uvicorn-workers": ["--workers", "2"],
    "granian": ["--server", "granian"],
}
EXPECTED = {
    "v4_add": 200,  # hosts_allow = 127.0.0.1 matches the IPv4 client seen as ::ffff:127.0.0.1
    "v6_add": 403,
    "v4_get": 403,  # hosts_deny = 127.0.0.0/8 too
    "v4_get_forwarded": 200,  # the mapped peer is the named proxy 127.0.0.1
    "v6_get": 204,
}


def dual_stack_probe(redis_url: str, tmp_path: Path, options: list[str], bindv6only: bool) -> dict[str, object]:
    args = ["--redis", redis_url, "--acl", write_acl(tmp_path, ACL), "--forwarded-allow-ips", "127.0.0.1", *options]
    result = run_python_isolated(
        "tests.helpers.dualstack_probe", str(tmp_path / "serve.log"), *args, bindv6only=bindv6only
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome: dict[str, object] = orjson.loads(result.stdout.splitlines()[-1])
    return outcome


@pytest.mark.parametrize("path", list(PATHS))
def test_host_ipv6_any_serves_ipv4_clients_under_ipv4_rules(redis_url: str, tmp_path: Path, path: str) -> None:
    """Issue 13: `--host ::` is dual-stack on every path (uvicorn with one worker listened on IPv6
    only), and an IPv4 client (::ffff:127.0.0.1 on the socket) meets the IPv4 rules."""
    assert dual_stack_probe(redis_url, tmp_path, PATHS[path], bindv6only=False) == EXPECTED


@pytest.mark.parametrize("path", list(PATHS))
def test_host_ipv6_any_does_not_depend_on_the_kernel_default(redis_url: str, tmp_path: Path, path: str) -> None:
    """Issue 13: with net.ipv6.bindv6only=1, uvicorn still listens dual-stack; granian, which
    cannot be told, refuses to start rather than silently serve IPv6 only."""
    outcome = dual_stack_probe(redis_url, tmp_path, PATHS[path], bindv6only=True)
    if path == "granian":
        assert outcome.get("exit") == 1, outcome
        assert "bindv6only" in str(outcome["log"]) and "Traceback" not in str(outcome["log"]), outcome
    else:
        assert outcome == EXPECTED


# -- slow bodies: every connection bounded in time -------------------------------------------------

TIMEOUTS = ["--idle-timeout", "1", "--body-timeout", "1"]
CLOSE_BOUND = 8.0  # seconds: the timeouts are 1 s; the rest is room for a loaded machine


@pytest.fixture
def timed_server(redis_url: str, tmp_path: Path, server_args: list[str]) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, *TIMEOUTS, *server_args], tmp_path) as server:
        yield server


async def assert_dropped_while_trickling(server: ServeProcess, head: bytes, piece: bytes, expected_status: int) -> None:
    """Send `head`, then `piece` every 0.2 s: the response comes, and the server closes the
    connection (EOF, then writes fail) within CLOSE_BOUND seconds of it, whatever is still coming."""
    async with raw_connection(server.url) as (reader, writer):
        writer.write(head)
        sender = asyncio.create_task(trickle(writer, piece, 0.2))
        try:
            status, _, body = await read_response(reader, timeout=CLOSE_BOUND)
            assert status == expected_status, body
            answered = time.monotonic()
            assert await closed_by_server(reader, timeout=CLOSE_BOUND), "the connection was kept"
            await asyncio.wait_for(sender, CLOSE_BOUND)  # the server stopped reading: the writes fail
            assert time.monotonic() - answered < CLOSE_BOUND
        finally:
            sender.cancel()


async def test_the_unread_rest_of_a_body_does_not_hold_the_connection(timed_server: ServeProcess) -> None:
    """Issue 13: a request whose body keeps trickling in after its response (here /health, which
    reads no body) kept its connection on uvicorn for as long as a byte came every few seconds."""
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nx"
    await assert_dropped_while_trickling(timed_server, head, b"x", 200)


async def test_a_response_sent_before_its_body_arrived_says_the_connection_closes(timed_server: ServeProcess) -> None:
    """A response sent before its request's body has arrived (a refusal, or a route that reads no body): either it
    says `Connection: close` and the connection ends, or the connection stays usable. uvicorn dropped it without a
    word, so a keep-alive client (httpx writes headers and body apart) sent its next request into a closing
    connection and got no answer."""
    async with raw_connection(timed_server.url) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n")
        status, headers, _ = await read_response(reader, timeout=CLOSE_BOUND)
        assert status == 200
        writer.write(b"hello")  # the body, late
        if headers.get("connection", "").lower() == "close":
            assert await closed_by_server(reader, timeout=CLOSE_BOUND)
        else:
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, _ = await read_response(reader, timeout=CLOSE_BOUND)
            assert status == 200


@pytest.mark.parametrize(
    ("framing", "piece"),
    [("Content-Length: 100000", b"x"), ("Transfer-Encoding: chunked", b"1\r\nx\r\n")],
    ids=["content-length", "chunked"],
)
async def test_a_body_too_slow_gets_408_and_its_connection_closed(
    timed_server: ServeProcess, framing: str, piece: bytes
) -> None:
    """Issue 13: after the 408 for a body that did not arrive within --body-timeout, the server
    closes the connection instead of waiting for the rest of the body."""
    head = (
        b"POST /q/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        + framing.encode()
        + b"\r\n\r\n"
    )
    await assert_dropped_while_trickling(timed_server, head, piece, 408)
    assert httpx.get(timed_server.url + "/stats/slow", timeout=10).json()["added"] == 0


async def test_health_answers_while_hundreds_of_bodies_trickle(
    redis_url: str, tmp_path: Path, server_args: list[str]
) -> None:
    """Issue 13: with 256 file descriptors, 400 connections whose bodies trickle (opened at ~100
    per second, a byte each per second) exhausted uvicorn's descriptors and /health stopped
    answering; each such connection must end right after its response."""
    args = ["--redis", redis_url, *TIMEOUTS, *server_args]
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nx"
    with serve(args, tmp_path, open_files=256) as server:
        connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        host, port = "127.0.0.1", server.port

        async def attacker() -> None:
            for _ in range(400):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(head)
                connections.append((reader, writer))
                await asyncio.sleep(0.01)  # the attack's pace (about 100 connections a second)

        async def trickler() -> None:
            while True:
                for _, writer in connections:
                    if not writer.is_closing():
                        writer.write(b"x")
                await asyncio.sleep(1.0)  # the trickle's pace (a byte per connection per second)

        opening = asyncio.create_task(attacker())
        sending = asyncio.create_task(trickler())
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answered = 0
                while not opening.done() or answered < 5:
                    started = time.monotonic()
                    health = await client.get(server.url + "/health", headers={"Connection": "close"})
                    assert health.status_code == 200
                    assert time.monotonic() - started < 5, "/health was slow to answer"
                    answered += 1
                    await asyncio.sleep(0.25)  # one health check every quarter second, as a monitor would
                await opening

            deadline = time.monotonic() + 20
            for reader, _ in connections:
                assert await closed_by_server(reader, timeout=max(0.1, deadline - time.monotonic()))
        finally:
            opening.cancel()
            sending.cancel()
            for _, writer in connections:
                writer.close()


async def test_a_fractional_idle_timeout_is_kept(redis_url: str, tmp_path: Path, server_args: list[str]) -> None:
    """Issue 13: uvicorn rounded --idle-timeout down, so 0.5 closed every connection before its request."""
    with serve(["--redis", redis_url, "--idle-timeout", "0.5", *server_args], tmp_path) as server:
        async with raw_connection(server.url) as (reader, writer):
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await read_response(reader, timeout=CLOSE_BOUND))[0] == 200
            assert await closed_by_server(reader, timeout=CLOSE_BOUND)
