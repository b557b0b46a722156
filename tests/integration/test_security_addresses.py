"""Addresses a server can trust (issue 13), on real `restmq serve` processes, uvicorn and granian alike.

- X-Forwarded-For/-Proto are believed only from the proxies --forwarded-allow-ips names; from them
  an address that cannot be parsed is a 400, never an allow.
- `--host ::` listens on IPv6 and IPv4 on every path (uvicorn, uvicorn --workers 2, granian), and an
  IPv4 client, seen as ::ffff:a.b.c.d, is matched by IPv4 rules. These run in a private network
  namespace with only lo up.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers.auth import write_acl
from tests.helpers.netns import run_python_isolated
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
