"""Issue 13: a backend password never leaves the server. `restmq serve --redis redis://:<password>@host`
against a real valkey-server started with `--requirepass`: the password appears in no reply (/ready,
/stats/, /stats/stream, /metrics, a 503 after the engine is gone), no log line, no CLI output; node
addresses (redacted) are shown only to callers authorized as admin."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers.auth import basic, bearer, create_token, restmq_cli, write_acl
from tests.helpers.password_engine import PasswordEngine, password_engines
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SSE = {"Accept": "text/event-stream"}


def fresh_secret(tag: str) -> str:
    return f"Pw{tag}{secrets.token_hex(8)}"


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[PasswordEngine]]:
    with password_engines(tmp_path / "engines", fresh_secret("one"), fresh_secret("two")) as started:
        yield started


def first_stats_event(url: str, headers: dict[str, str] | None = None) -> str:
    """The first `data:` line of /stats/stream (what the dashboard's EventSource receives)."""
    with httpx.stream("GET", url + "/stats/stream", headers={**SSE, **(headers or {})}, timeout=20) as reply:
        assert reply.status_code == 200, reply.read()
        for line in reply.iter_lines():
            if line.startswith(("data:", "event:")):
                return line
    raise AssertionError("/stats/stream ended without an event")


def replies_while_up(server: ServeProcess) -> dict[str, str]:
    """Everything the server says about itself while its backend answers."""
    with httpx.Client(base_url=server.url, timeout=20) as http:
        assert http.post("/q/jobs", data={"value": "hello"}).status_code == 200
        seen = {path: http.get(path).text for path in ("/ready", "/stats/", "/stats", "/metrics", "/q/", "/stats/jobs")}
    seen["/stats/stream"] = first_stats_event(server.url)
    stats = restmq_cli("stats", "--url", server.url)
    seen["restmq stats"] = stats.stdout + stats.stderr
    stats_json = restmq_cli("stats", "--json", "--url", server.url)
    seen["restmq stats --json"] = stats_json.stdout + stats_json.stderr
    return seen


def replies_while_down(server: ServeProcess) -> dict[str, str]:
    """The answers once no backend answers: 503 bodies name what is unavailable."""
    seen: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=20) as http:

        def unavailable() -> bool:
            reply = http.get("/q/jobs")
            seen["GET /q/jobs"] = reply.text
            return reply.status_code == 503

        wait_until(unavailable, 20, 0.05, "a 503 from the server whose backend is gone")
        for method, path in (("POST", "/q/jobs"), ("GET", "/ready"), ("GET", "/stats/"), ("POST", "/queue")):
            reply = http.request(method, path, data={"value": "x", "body": '{"cmd":"take","queue":"jobs"}'})
            seen[f"{method} {path}"] = f"{reply.status_code} {reply.text}"
    seen["/stats/stream"] = first_stats_event(server.url)
    return seen


def assert_hidden(password: str, seen: dict[str, str]) -> None:
    for where, text in seen.items():
        assert password not in text and password not in text.replace("\n", ""), f"the password shows in {where}"


@pytest.mark.parametrize(
    ("form", "launch"),
    [
        ("password", []),
        ("user-and-password", []),
        ("unix-socket-query", []),
        ("password", ["--server", "granian"]),
        ("password", ["--workers", "2"]),
    ],
    ids=["password", "user-and-password", "unix-socket-query", "granian", "workers-2"],
)
def test_the_backend_password_shows_nowhere(
    tmp_path: Path, engines: list[PasswordEngine], form: str, launch: list[str]
) -> None:
    engine = engines[0]
    url, shown = {
        "password": (engine.url, f"redis://:***@127.0.0.1:{engine.port}/0"),
        "user-and-password": (
            f"redis://default:{engine.password}@127.0.0.1:{engine.port}/0",
            f"redis://default:***@127.0.0.1:{engine.port}/0",
        ),
        "unix-socket-query": (
            f"unix://{engine.socket_path}?db=0&password={engine.password}",
            f"unix://{engine.socket_path}?db=0&password=***",
        ),
    }[form]
    with serve(["--redis", url, "--log-level", "debug", *launch], tmp_path) as server:
        seen = replies_while_up(server)
        ready = orjson.loads(seen["/ready"])
        assert ready == {"status": "ready", "nodes": {shown: "up"}}  # loopback on an open server: admin
        assert orjson.loads(seen["/stats/"])["nodes"] == {shown: "up"}
        assert shown in seen["restmq stats"]
        engine.stop()
        seen |= {f"{where} (backend down)": text for where, text in replies_while_down(server).items()}
        assert shown in seen["GET /q/jobs (backend down)"]  # the 503 still says which backend
        config = restmq_cli("config", "--redis", url)
        seen["restmq config"] = config.stdout + config.stderr
        assert shown in seen["restmq config"]
        tokens = restmq_cli("token", "list", "--redis", url)
        assert tokens.returncode != 0
        seen["restmq token list (backend down)"] = tokens.stdout + tokens.stderr
    seen["server log"] = server.log()
    assert "RestMQ on http://" in seen["server log"]
    assert_hidden(engine.password, seen)


def test_no_ring_password_shows_anywhere(tmp_path: Path, engines: list[PasswordEngine]) -> None:
    one, two = engines
    ring = f"{one.url}?weight=2,{two.url}"  # one comma list, as --redis accepts it
    with serve(["--redis", ring, "--log-level", "debug"], tmp_path) as server:
        seen = replies_while_up(server)
        shown = {f"redis://:***@127.0.0.1:{e.port}/0": "up" for e in engines}
        assert orjson.loads(seen["/ready"])["nodes"] == shown
        one.stop()
        with httpx.Client(base_url=server.url, timeout=20) as http:

            def one_down() -> bool:
                reply = http.get("/ready")
                seen["/ready (one node down)"] = reply.text
                return "down" in reply.text

            wait_until(one_down, 20, 0.05, "/ready to show the stopped ring node down")
            for i in range(10):  # the stopped node's queues are written to the other one
                assert http.post(f"/q/spread{i}", data={"value": "x"}).status_code == 200
        create = restmq_cli("token", "create", "--redis", ring, "--queues", "*", "--rights", "read")
        assert create.returncode != 0 and f"redis://:***@127.0.0.1:{one.port}/0" in create.stderr, create.stderr
        seen["restmq token create (one node down)"] = create.stdout + create.stderr
        two.stop()
        seen |= {f"{where} (ring down)": text for where, text in replies_while_down(server).items()}
        config = restmq_cli("config", "--redis", ring)
        seen["restmq config"] = config.stdout + config.stderr
        tokens = restmq_cli("token", "list", "--redis", ring)
        assert tokens.returncode != 0
        seen["restmq token list (ring down)"] = tokens.stdout + tokens.stderr
    seen["server log"] = server.log()
    assert "ring node redis://:***@" in seen["server log"]  # the log still says which node went down
    for engine in engines:
        assert_hidden(engine.password, seen)


def test_a_bad_ring_url_fails_without_showing_its_password(tmp_path: Path, engines: list[PasswordEngine]) -> None:
    one, two = engines
    process = ServeProcess(["--redis", f"{one.url}?weight=0,{two.url}"], free_port(), tmp_path / "bad.log")
    assert process.proc.wait(60) != 0
    process.stop()
    output = process.log()
    assert "weight must be 1 or more in redis://:***@" in output
    assert_hidden(one.password, {"serve output": output})


def test_a_password_with_a_comma_stays_one_url(tmp_path: Path) -> None:
    """A comma inside a URL (a password may hold one) does not split a --redis list."""
    with password_engines(tmp_path, "pass,word" + secrets.token_hex(4)) as (engine,):
        with serve(["--redis", engine.url], tmp_path) as server:
            ready = httpx.get(server.url + "/ready", timeout=20).json()
            assert ready == {"status": "ready", "nodes": {f"redis://:***@127.0.0.1:{engine.port}/0": "up"}}
    assert_hidden(engine.password.partition(",")[2], {"server log": server.log()})


# -- who sees node addresses --------------------------------------------------------------------------------


def nodes_seen(url: str, path: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    reply = httpx.get(url + path, headers=headers, timeout=20)
    assert reply.status_code == 200, reply.text
    nodes: dict[str, str] = reply.json()["nodes"]
    return nodes


def test_with_tokens_only_an_admin_token_sees_node_addresses(tmp_path: Path, engines: list[PasswordEngine]) -> None:
    one, two = engines
    ring = f"{one.url},{two.url}"
    admin = create_token(ring, "*", "admin")
    reader = create_token(ring, "*", "read")
    addresses = {f"redis://:***@127.0.0.1:{e.port}/0": "up" for e in engines}
    anonymous = {"node1": "up", "node2": "up"}
    with serve(["--redis", ring], tmp_path) as server:
        assert nodes_seen(server.url, "/ready") == anonymous  # tokens exist: loopback alone is not admin
        assert nodes_seen(server.url, "/ready", bearer(reader)) == anonymous
        assert nodes_seen(server.url, "/ready", bearer("rmq_000000000000_nope")) == anonymous  # never a 401
        assert nodes_seen(server.url, "/ready", bearer(admin)) == addresses
        assert nodes_seen(server.url, "/stats/", bearer(reader)) == anonymous
        assert nodes_seen(server.url, "/stats/", bearer(admin)) == addresses
        assert "127.0.0.1" not in first_stats_event(server.url, bearer(reader))
        assert str(one.port) in first_stats_event(server.url, bearer(admin))
        one.stop()
        two.stop()

        def unavailable() -> bool:
            return httpx.get(server.url + "/ready", timeout=20).status_code == 503

        wait_until(unavailable, 20, 0.05, "/ready to answer 503 with every node stopped")
        down = httpx.get(server.url + "/ready", timeout=20).json()
        assert down == {"status": "unavailable", "error": "the backend is unavailable", "nodes": down["nodes"]}
        assert "127.0.0.1" not in str(down) and set(down["nodes"]) == {"node1", "node2"}


def test_with_an_acl_the_producer_credentials_see_node_addresses(tmp_path: Path, engines: list[PasswordEngine]) -> None:
    engine = engines[0]
    acl = write_acl(tmp_path, "[rest:producer]\nusername = boss\npassword = hunter2\n[rest:consumer]\n")
    address = {f"redis://:***@127.0.0.1:{engine.port}/0": "up"}
    with serve(["--redis", engine.url, "--acl", acl], tmp_path) as server:
        assert nodes_seen(server.url, "/ready") == {"node1": "up"}
        assert nodes_seen(server.url, "/ready", basic("boss", "wrong")) == {"node1": "up"}
        assert nodes_seen(server.url, "/ready", basic("boss", "hunter2")) == address
        assert nodes_seen(server.url, "/stats/") == {"node1": "up"}  # a consumer, not an admin


NETNS_PROBE = """
import json, subprocess, sys, time
import httpx
port, redis_url = sys.argv[1], sys.argv[2]
argv = ["serve", "--host", "0.0.0.0", "--port", port, "--insecure-open", "--redis", redis_url]
server = subprocess.Popen([sys.executable, "-m", "restmq", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
seen = {}
try:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("restmq serve did not start")
        time.sleep(0.05)
    for source in ("127.0.0.1", "10.213.0.1"):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=20) as http:
            seen[source] = http.get(f"http://{source}:{port}/ready").json()["nodes"]
finally:
    server.terminate()
    server.wait(30)
print(json.dumps(seen))
"""


def test_an_open_server_shows_node_addresses_to_loopback_clients_only(
    tmp_path: Path, engines: list[PasswordEngine]
) -> None:
    """In a private network namespace (only `lo`, with a non-loopback address added): a server on 0.0.0.0
    without authentication (--insecure-open) shows addresses to a client on 127.0.0.1, not to one
    connecting from 10.213.0.1. The engine is reached through its unix socket, which crosses namespaces."""
    engine = engines[0]
    redis_url = f"unix://{engine.socket_path}?password={engine.password}"
    setup = "ip link set lo up && ip addr add 10.213.0.1/32 dev lo"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", setup + ' && exec "$@"', "sh", sys.executable, "-c", NETNS_PROBE]
        + [str(free_port()), redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    seen = orjson.loads(result.stdout.splitlines()[-1])
    assert seen["127.0.0.1"] == {f"unix://{engine.socket_path}?password=***": "up"}
    assert seen["10.213.0.1"] == {"node1": "up"}
