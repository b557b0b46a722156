"""Browser-borne requests (issue 13, items 6 and 7): the Host allowlist against DNS rebinding, the refusal of
cross-site requests, JSONP off unless --jsonp, WebSocket handshakes from foreign origins and the auth cookie,
and the headers that keep pages out of frames and stop content sniffing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.auth import write_acl, ws_session
from tests.helpers.queues import add, length
from tests.helpers.rawhttp import raw_connection, read_response
from tests.helpers.server import ServeProcess, run_app, serve
from tests.helpers.streams import ws_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVIL = "https://evil.example"
APP = "https://app.example"


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def served(
    request: pytest.FixtureRequest, engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """`restmq serve` with its defaults, on uvicorn and on granian (one of each for the module)."""
    args = ["--redis", engine.url, "--server", request.param]
    with serve(args, tmp_path_factory.mktemp(request.param), request.param) as process:
        yield process


@pytest.fixture
async def client(served: ServeProcess, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client (no browser headers) of `served`, on a flushed engine."""
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as plain:
        yield plain


async def handshake(base: str, path: str, headers: dict[str, str]) -> int:
    """The status of a raw WebSocket opening handshake (101 when accepted), with these headers as given."""
    sent = {
        "Host": base.removeprefix("http://"),
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in sent.items())
    async with raw_connection(base) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.1\r\n{lines}\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    return int(status_line.split()[1])


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    message: str = body["error"]
    return message


# -- Host allowlist (DNS rebinding) -----------------------------------------------------------------


async def test_a_foreign_host_is_421_and_touches_nothing(client: httpx.AsyncClient) -> None:
    """The DNS-rebinding repro: `curl -H 'Host: attacker.example' /q/jobs` popped a message."""
    await add(client, "jobs", "precious")
    foreign = {"Host": "attacker.example"}
    message = assert_error(await client.get("/q/jobs", headers=foreign), 421, "HOST_NOT_ALLOWED")
    assert "--allowed-hosts" in message
    assert_error(await client.post("/q/jobs", data={"value": "x"}, headers=foreign), 421, "HOST_NOT_ALLOWED")
    assert_error(await client.get("/stats/", headers={"Host": "attacker.example:8888"}), 421, "HOST_NOT_ALLOWED")
    assert_error(await client.get("/", headers={"Host": "127.0.0.1.attacker.example"}), 421, "HOST_NOT_ALLOWED")
    assert_error(await client.get("/health", headers={"Host": "localhost.attacker.example"}), 421, "HOST_NOT_ALLOWED")
    assert await length(client, "jobs") == 1


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST:8888",
        "localhost.",
        "app.localhost",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.8.9.10:80",
        "[::1]",
        "[::1]:8888",
    ],
)
async def test_localhost_names_and_loopback_addresses_are_served(client: httpx.AsyncClient, host: str) -> None:
    await add(client, "jobs", "for you")
    response = await client.get("/q/jobs", headers={"Host": host})
    assert response.status_code == 200 and response.json()["value"] == "for you", response.text


async def test_a_request_without_host_is_served(served: ServeProcess, client: httpx.AsyncClient) -> None:
    """HTTP/1.0 needs no Host header: nothing to check, nothing refused."""
    await add(client, "jobs", "old client")
    async with raw_connection(served.url) as (reader, writer):
        writer.write(b"GET /q/jobs HTTP/1.0\r\n\r\n")
        await writer.drain()
        status, _, body = await read_response(reader, timeout=10)
    assert status == 200 and b"old client" in body


async def test_a_websocket_naming_a_foreign_host_is_refused(served: ServeProcess, client: httpx.AsyncClient) -> None:
    await add(client, "jobs", "precious")
    assert await handshake(served.url, "/ws/jobs", {"Host": "attacker.example"}) == 421
    # accepted: on another queue, since the server may register this consumer after the client has gone, and a
    # broadcast consumer of "jobs" would take the next test's message
    assert await handshake(served.url, "/ws/accepted", {"Host": "localhost"}) == 101
    assert await length(client, "jobs") == 1


async def test_allowed_hosts_adds_names_and_patterns(redis_url: str) -> None:
    names = ("queue.example.com", "*.corp.example", "10.1.2.3")
    async with run_app(redis_url, allowed_hosts=names) as base, httpx.AsyncClient(base_url=base) as http:
        for host in (
            "queue.example.com",
            "Queue.Example.Com:8080",
            "a.corp.example",
            "a.b.corp.example",
            "10.1.2.3:1",
            "localhost",
            "127.0.0.1",
        ):
            assert (await http.get("/health", headers={"Host": host})).status_code == 200, host
        for host in ("corp.example", "evil.example", "queue.example.com.evil.example", "acorp.example", "10.1.2.4"):
            assert_error(await http.get("/health", headers={"Host": host}), 421, "HOST_NOT_ALLOWED")


async def test_allowed_hosts_star_serves_any_host(redis_url: str) -> None:
    async with run_app(redis_url, allowed_hosts=("*",)) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/health", headers={"Host": "anything.example"})).status_code == 200


def test_a_bad_allowed_hosts_entry_stops_start_up(tmp_path: Path) -> None:
    from tests.helpers.auth import restmq_cli

    result = restmq_cli("serve", "--redis", "redis://127.0.0.1:1", "--allowed-hosts", "good.example,bad host")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--allowed-hosts" in result.stderr and "bad host" in result.stderr


# -- cross-site requests ----------------------------------------------------------------------------


async def test_cross_site_forms_neither_add_nor_change_settings(client: httpx.AsyncClient) -> None:
    """A page's auto-submitted form: Origin of the page, or Sec-Fetch-Site: cross-site."""
    await add(client, "jobs", "precious")
    for browser in ({"Origin": EVIL}, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        refused = [
            await client.post("/q/jobs", data={"value": "forged"}, headers=browser),
            await client.post("/", data={"queue": "jobs", "value": "forged"}, headers=browser),
            await client.post("/queue", data={"body": '{"cmd":"add","queue":"jobs","value":"x"}'}, headers=browser),
            await client.post("/control/jobs", data={"status": "stop"}, headers=browser),
            await client.post("/p/jobs", data={"policy": "roundrobin"}, headers=browser),
            await client.delete("/q/jobs", headers=browser),
        ]
        for response in refused:
            message = assert_error(response, 403, "CROSS_SITE_REQUEST")
            assert "--cors-origin" in message
    assert await length(client, "jobs") == 1
    assert (await client.get("/control/jobs")).json()["status"] == "start"
    assert (await client.get("/p/jobs")).json()["value"] == "broadcast"


READS = [
    "/q/jobs",
    "/?queue=jobs",
    "/q/jobs?count=5",
    "/q/jobs?lease=30",
    "/peek/jobs",
    "/stats/",
    "/stats/jobs",
    "/q/",
    "/metrics",
    "/c/jobs",
    "/sse/jobs",
    "/stats/stream",
    "/p/jobs",
    "/control/jobs",
]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_cross_site_reads_are_403(client: httpx.AsyncClient, site: str) -> None:
    """<script src>, <img>, no-cors fetch(): no Origin header, only Sec-Fetch-Site. A page on another port of
    the same host is `same-site`, and another origin all the same."""
    await add(client, "jobs", "precious")
    for path in READS:
        for mode in ("no-cors", "navigate"):
            headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Accept": "text/event-stream, */*"}
            assert_error(await client.get(path, headers=headers), 403, "CROSS_SITE_REQUEST")
        assert_error(await client.get(path, headers={"Origin": EVIL}), 403, "CROSS_SITE_REQUEST")
    assert (await client.get("/stats/jobs")).json()["delivered"] == 0
    assert await length(client, "jobs") == 1


PUBLIC = ["/", "/ui", "/ui/static/style.css", "/docs", "/openapi.json", "/asyncapi.json", "/health", "/ready"]


@pytest.mark.parametrize("path", PUBLIC)
async def test_pages_without_messages_stay_reachable_from_other_sites(client: httpx.AsyncClient, path: str) -> None:
    """A link from another site to the dashboard, or to the API reference, still opens."""
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert (await client.get(path, headers=navigate)).status_code == 200
    assert (await client.head(path, headers=navigate)).status_code == 200


async def test_dashboard_pages_opened_from_another_site_come_without_data(client: httpx.AsyncClient) -> None:
    """The page's own script fills them in (a same-origin request); the other site learns nothing."""
    await add(client, "secret.queue", "secret value")
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
    for path in ("/", "/ui", "/j/secret.queue"):
        page = await client.get(path, headers=navigate)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "secret value" not in page.text and 'data-queue="secret.queue"' not in page.text, path
        own = await client.get(path, headers={**navigate, "Sec-Fetch-Site": "same-origin"})
        assert "secret.queue" in own.text and ("secret value" in own.text or path != "/j/secret.queue"), path
    assert await length(client, "secret.queue") == 1


async def test_own_origin_and_user_typed_requests_are_served(served: ServeProcess, client: httpx.AsyncClient) -> None:
    own = {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}
    assert (await client.post("/q/jobs", data={"value": "from the dashboard"}, headers=own)).status_code == 200
    assert (
        await client.post("/control/jobs", data={"status": "stop"}, headers={"Origin": served.url})
    ).status_code == 200
    assert (await client.post("/control/jobs", data={"status": "start"}, headers=own)).status_code == 200
    typed = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}
    response = await client.get("/q/jobs", headers=typed)
    assert response.status_code == 200 and response.json()["value"] == "from the dashboard"
    localhost = served.url.replace("127.0.0.1", "localhost")
    same = {"Host": f"localhost:{served.port}", "Origin": localhost}
    assert (await client.post("/q/jobs", data={"value": "x"}, headers=same)).status_code == 200
    other_port = {"Origin": f"http://127.0.0.1:{served.port + 1}"}
    assert_error(await client.post("/q/jobs", data={"value": "x"}, headers=other_port), 403, "CROSS_SITE_REQUEST")


async def test_a_cors_origin_is_allowed_and_others_are_not(redis_url: str) -> None:
    async with run_app(redis_url, cors_origins=(APP,)) as base, httpx.AsyncClient(base_url=base) as http:
        await add(http, "jobs", "for the app")
        app = {"Origin": APP, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
        response = await http.get("/q/jobs", headers=app)
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == APP
        assert (await http.post("/q/jobs", data={"value": "from the app"}, headers=app)).status_code == 200
        evil = {**app, "Origin": EVIL}
        assert_error(await http.get("/q/jobs", headers=evil), 403, "CROSS_SITE_REQUEST")
        # a <script src> of the allowed page sends no Origin; its Referer names the page
        script = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Referer": APP + "/page.html"}
        assert (await http.get("/stats/jobs", headers=script)).status_code == 200
        forged = {**script, "Referer": EVIL + "/" + APP}
        assert_error(await http.get("/stats/jobs", headers=forged), 403, "CROSS_SITE_REQUEST")
        preflight = {"Origin": APP, "Access-Control-Request-Method": "POST"}
        assert (await http.options("/q/jobs", headers=preflight)).status_code == 200
        assert await length(http, "jobs") == 1


async def test_a_cors_wildcard_allows_every_origin(redis_url: str) -> None:
    async with run_app(redis_url, cors_origins=("*",)) as base, httpx.AsyncClient(base_url=base) as http:
        headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
        assert (await http.post("/q/jobs", data={"value": "anyone"}, headers=headers)).status_code == 200
        assert (await http.get("/q/jobs", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 200


async def test_preflights_without_cors_are_not_refused_as_cross_site(client: httpx.AsyncClient) -> None:
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    response = await client.options("/q/jobs", headers=preflight)
    assert response.status_code in (404, 405) and "access-control-allow-origin" not in response.headers


# -- JSONP --------------------------------------------------------------------------------------------

JSONP_CASES = [
    ("GET", "/q/jobs?callback=cb"),
    ("GET", "/q/jobs?count=5&callback=cb"),
    ("GET", "/?queue=jobs&callback=cb"),
    ("GET", "/q/jobs?call%62ack=cb"),
    ("GET", "/stats/?callback=cb"),
    ("GET", "/stats/jobs?callback=cb"),
    ("GET", "/peek/jobs?callback=cb"),
    ("GET", "/c/jobs?callback=cb"),
    ("GET", "/health?callback=cb"),
    ("GET", "/q/jobs?callback="),
    ("GET", "/q/jobs?callback=alert(1)//"),
    ("POST", "/queue?callback=cb"),
    ("POST", "/q/jobs?callback=cb"),
    ("DELETE", "/q/jobs?callback=cb"),
]


async def test_jsonp_is_off_by_default_and_the_error_names_the_option(client: httpx.AsyncClient) -> None:
    """`<script src=…/q/jobs?callback=x>` popped messages and read /stats/ from any page."""
    await add(client, "jobs", "precious")
    for method, path in JSONP_CASES:
        body: dict[str, Any] = {"json": {"cmd": "take", "queue": "jobs"}} if path.startswith("/queue") else {}
        response = await client.request(method, path, **body)
        message = assert_error(response, 400, "JSONP_DISABLED")
        assert "--jsonp" in message, message
    assert await length(client, "jobs") == 1


async def test_jsonp_works_as_before_with_the_option(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, "--jsonp"], tmp_path) as server, httpx.Client(base_url=server.url) as http:
        http.post("/q/jobs", data={"value": "hello"}).raise_for_status()
        response = http.get("/q/jobs", params={"callback": "show"})
        assert response.text == 'show({"key":"jobs:1","value":"hello","count":1});\n'
        assert response.headers["content-type"].startswith("application/javascript")
        assert http.get("/stats/", params={"callback": "1bad"}).json()["code"] == "CALLBACK_INVALID"


# -- WebSocket: the Origin of the handshake, and the auth cookie ---------------------------------------


async def test_a_websocket_from_a_foreign_origin_is_refused_with_403(
    served: ServeProcess, client: httpx.AsyncClient
) -> None:
    """Cross-site WebSocket hijacking: the handshake ignored Origin."""
    await add(client, "jobs", "precious")
    for browser in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": f"http://127.0.0.1:{served.port + 1}"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "websocket"},
        {"Sec-Fetch-Site": "same-site", "Origin": f"http://localhost:{served.port}"},
    ):
        assert await handshake(served.url, "/ws/jobs", browser) == 403, browser
    assert await length(client, "jobs") == 1
    own = await ws_session(ws_url(served.url, "jobs"), headers={"Origin": served.url}, expect_frames=1)
    assert own.frames[0]["value"] == "precious"


async def test_the_auth_cookie_counts_only_from_an_allowed_origin(redis_url: str, tmp_path: Path) -> None:
    """The `auth=user:pass` cookie rides along with every WebSocket a page opens to this host."""
    acl = write_acl(tmp_path, "[websocket:consumer]\nusername = ws\npassword = secret\n")
    cookie = {"Cookie": "auth=ws:secret"}
    async with run_app(redis_url, acl=acl, cors_origins=("*", APP)) as base, httpx.AsyncClient(base_url=base) as http:
        url = ws_url(base, "jobs")
        await add(http, "jobs", "precious")
        # '*' lets any page open a WebSocket, without credentials: the cookie is not honoured
        anyone = await ws_session(url, headers={**cookie, "Origin": EVIL}, expect_frames=1)
        assert anyone.close_code == 1008 and not anyone.frames, anyone
        assert await length(http, "jobs") == 1
        for origin in (APP, base, None):  # listed, its own, none at all (not a page)
            headers = {**cookie, "Origin": origin} if origin else cookie
            outcome = await ws_session(url, headers=headers, expect_frames=1)
            assert outcome.frames == [{"key": outcome.frames[0]["key"], "value": "precious"}], (origin, outcome)
            await add(http, "jobs", "precious")


# -- headers --------------------------------------------------------------------------------------------


async def test_pages_cannot_be_framed_and_nothing_is_sniffed(client: httpx.AsyncClient) -> None:
    await add(client, "jobs", "x")
    html = {"Accept": "text/html"}
    for path in ("/", "/ui", "/j/jobs", "/docs", "/q/"):
        response = await client.get(path, headers=html)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    others = [
        await client.get("/q/jobs"),
        await client.get("/q/jobs"),  # 204
        await client.post("/q/jobs", data={"value": "y"}),
        await client.get("/stats/"),
        await client.get("/q/bad name"),
        await client.get("/ui/static/app.js"),
        await client.get("/metrics"),
        await client.get("/health", headers={"Host": "attacker.example"}),
        await client.get("/q/jobs", headers={"Origin": EVIL}),
    ]
    for response in others:
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
    async with client.stream("GET", "/c/jobs") as stream:
        assert stream.headers["x-content-type-options"] == "nosniff"
    async with client.stream("GET", "/sse/jobs") as stream:
        assert stream.headers["x-content-type-options"] == "nosniff"


# -- a wildcard bind, in a network namespace whose lo also holds 10.77.0.1 and fd00:77::1 -------------

WILDCARD_PROBE = """
import json, subprocess, sys, time
import httpx

server, bind, own, other, redis_url, log_path = sys.argv[1:7]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"], check=True)
subprocess.run(["ip", "addr", "add", "fd00:77::1/128", "dev", "lo", "nodad"], check=True)
command = [sys.executable, "-m", "restmq", "serve", "--host", bind, "--port", "8888", "--server", server,
           "--redis", redis_url, "--insecure-open", *sys.argv[7:]]
proc = subprocess.Popen(command, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
url = f"http://{own}:8888/health"
try:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("restmq serve did not start")
            time.sleep(0.05)
    hosts = [f"{own}:8888", own, "127.0.0.1:8888", "localhost", "queue.example", other]
    print(json.dumps([httpx.get(url, headers={"Host": host}).status_code for host in hosts]))
finally:
    proc.terminate()
    proc.wait(30)
"""


@pytest.mark.parametrize(
    ("server", "bind", "own", "other"),
    [
        ("uvicorn", "0.0.0.0", "10.77.0.1", "10.77.0.2"),
        ("uvicorn", "::", "[fd00:77::1]", "[fd00:77::2]"),
        ("granian", "0.0.0.0", "10.77.0.1", "10.77.0.2"),
    ],
)
def test_a_wildcard_bind_serves_its_own_addresses_and_listed_names_only(
    redis_url: str, tmp_path: Path, server: str, bind: str, own: str, other: str
) -> None:
    """--host 0.0.0.0 (or ::) without --allowed-hosts: the machine's own addresses and localhost are served,
    names are not (they could be rebound) until --allowed-hosts lists them. Runs in `unshare -n`."""
    probe = tmp_path / "probe.py"
    probe.write_text(WILDCARD_PROBE)

    def run(*extra: str) -> list[int]:
        log = tmp_path / f"serve{len(extra)}.log"
        args = ["unshare", "-n", sys.executable, str(probe), server, bind, own, other, redis_url, str(log), *extra]
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr + log.read_text(errors="replace")
        statuses: list[int] = orjson.loads(result.stdout.strip().splitlines()[-1])
        return statuses

    # own address with and without the port, loopback, localhost: served; a name, another address: 421
    assert run() == [200, 200, 200, 200, 421, 421]
    assert "--allowed-hosts" in (tmp_path / "serve0.log").read_text()  # start-up says how to add names
    assert run("--allowed-hosts", "queue.example") == [200, 200, 200, 200, 200, 421]
