"""Attacks from a page on another origin, in a real browser (issue 13, items 6 and 7): the page is served by a
second HTTP server on another port, which is another origin, and aims forms, script tags, fetch() and a
WebSocket carrying the auth cookie at `restmq serve`. Each must leave the queue as it was. An origin allowed
with --cors-origin still works, and the dashboard cannot be framed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.auth import write_acl
from tests.helpers.server import ServeProcess, serve

pytestmark = pytest.mark.e2e


class Site:
    """A plain HTTP server on 127.0.0.1 serving `pages` (path -> HTML): the attacker's origin."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {"/": "<!doctype html><title>elsewhere</title>"}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                html = site.pages.get(self.path.split("?", 1)[0])
                body = (html or "not found").encode()
                self.send_response(200 if html else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Site:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Site]:
    with Site() as site:
        yield site


@contextlib.contextmanager
def restmq_with(redis_url: str, tmp_path: Path, *args: str) -> Iterator[tuple[ServeProcess, httpx.Client]]:
    with serve(["--redis", redis_url, *args], tmp_path) as server, httpx.Client(base_url=server.url) as client:
        yield server, client


def queue_state(client: httpx.Client, queue: str) -> tuple[int, int, str]:
    """(ready, delivered, status) of `queue`, asked without any browser header."""
    stats = client.get(f"/stats/{queue}").json()
    return stats["length"], stats["delivered"], stats["status"]


def auto_submit(action: str, **fields: str) -> str:
    inputs = "".join(f'<input name="{name}" value="{value}">' for name, value in fields.items())
    return (
        f'<!doctype html><form id="f" method="POST" action="{action}">{inputs}</form>'
        '<script>document.getElementById("f").submit()</script>'
    )


def test_auto_submitted_forms_neither_add_nor_stop(redis_url: str, tmp_path: Path, elsewhere: Site, page: Any) -> None:
    with restmq_with(redis_url, tmp_path) as (restmq, client):
        client.post("/q/jobs", data={"value": "precious"}).raise_for_status()
        elsewhere.pages["/add"] = auto_submit(f"{restmq.url}/q/jobs", value="forged")
        elsewhere.pages["/stop"] = auto_submit(f"{restmq.url}/control/jobs", status="stop")
        elsewhere.pages["/index"] = auto_submit(f"{restmq.url}/", queue="jobs", value="forged")
        for path, target in (("/add", "/q/jobs"), ("/stop", "/control/jobs"), ("/index", "/")):
            page.goto(elsewhere.url + path)
            page.wait_for_url(restmq.url + target)  # the form was sent: the browser shows the answer
            page.wait_for_load_state()
            assert "CROSS_SITE_REQUEST" in page.content()
        assert queue_state(client, "jobs") == (1, 0, "start")


def test_script_tags_and_no_cors_fetches_neither_take_nor_read(
    redis_url: str, tmp_path: Path, elsewhere: Site, page: Any
) -> None:
    with restmq_with(redis_url, tmp_path, "--jsonp") as (restmq, client):  # JSONP on: the script tag's way in
        client.post("/q/jobs", data={"value": "precious"}).raise_for_status()
        page.goto(elsewhere.url + "/")
        outcome = page.evaluate(
            """async (base) => {
                const loads = [];
                window.stolen = [];
                window.x = (data) => window.stolen.push(data);
                for (const path of ["/q/jobs?callback=x", "/stats/?callback=x", "/peek/jobs?callback=x"]) {
                    loads.push(new Promise((resolve) => {
                        const script = document.createElement("script");
                        script.src = base + path;
                        script.onload = () => resolve("loaded");
                        script.onerror = () => resolve("refused");
                        document.head.append(script);
                    }));
                }
                const scripts = await Promise.all(loads);
                const form = (fields) => ({ mode: "no-cors", method: "POST", body: new URLSearchParams(fields) });
                await fetch(base + "/q/jobs", { mode: "no-cors" });
                await fetch(base + "/?queue=jobs", { mode: "no-cors" });
                await fetch(base + "/q/jobs", form({ value: "forged" }));
                await fetch(base + "/control/jobs", form({ status: "stop" }));
                await fetch(base + "/queue", form({ body: '{"cmd":"take","queue":"jobs"}' }));
                return { scripts, stolen: window.stolen };
            }""",
            restmq.url,
        )
        assert outcome == {"scripts": ["refused"] * 3, "stolen": []}
        assert queue_state(client, "jobs") == (1, 0, "start")


WEBSOCKET = """async (url) => await new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => { resolve({ opened: true, frames: [JSON.parse(event.data)] }); socket.close(); };
    socket.onclose = (event) => resolve({ opened: event.code !== 1006, frames: [] });
})"""


def test_a_websocket_carrying_the_auth_cookie_is_refused(
    redis_url: str, tmp_path: Path, elsewhere: Site, page: Any
) -> None:
    acl = write_acl(tmp_path, "[websocket:consumer]\nusername = ws\npassword = secret\n")
    with restmq_with(redis_url, tmp_path, "--acl", acl) as (restmq, client):
        client.post("/q/jobs", data={"value": "precious"}).raise_for_status()
        page.context.add_cookies([{"name": "auth", "value": "ws:secret", "url": restmq.url}])
        url = restmq.url.replace("http://", "ws://") + "/ws/jobs"
        page.goto(elsewhere.url + "/")
        assert page.evaluate(WEBSOCKET, url) == {"opened": False, "frames": []}
        assert queue_state(client, "jobs") == (1, 0, "start")
        page.goto(restmq.url + "/ui")  # the server's own page: the same cookie opens the same socket
        assert page.evaluate(WEBSOCKET, url) == {"opened": True, "frames": [{"key": "jobs:1", "value": "precious"}]}


def test_an_origin_allowed_with_cors_origin_works(redis_url: str, tmp_path: Path, elsewhere: Site, page: Any) -> None:
    acl = write_acl(tmp_path, "[websocket:consumer]\nusername = ws\npassword = secret\n")
    with restmq_with(redis_url, tmp_path, "--acl", acl, "--cors-origin", elsewhere.url) as (restmq, client):
        page.context.add_cookies([{"name": "auth", "value": "ws:secret", "url": restmq.url}])
        page.goto(elsewhere.url + "/")
        added = page.evaluate(
            """async (base) => {
                const body = new URLSearchParams({ value: "hi" });
                const response = await fetch(base + "/q/jobs", { method: "POST", body });
                return [response.status, await response.text()];
            }""",
            restmq.url,
        )
        assert added == [200, "jobs:1\r\n"]
        url = restmq.url.replace("http://", "ws://") + "/ws/jobs"
        assert page.evaluate(WEBSOCKET, url) == {"opened": True, "frames": [{"key": "jobs:1", "value": "hi"}]}
        assert queue_state(client, "jobs") == (0, 1, "start")


def test_the_dashboard_cannot_be_framed_and_its_policy_blocks_nothing(
    redis_url: str, tmp_path: Path, elsewhere: Site, page: Any
) -> None:
    with restmq_with(redis_url, tmp_path) as (restmq, client):
        client.post("/q/jobs", data={"value": "x"}).raise_for_status()
        elsewhere.pages["/frame"] = (
            f'<!doctype html><iframe id="f" src="{restmq.url}/ui" onload="document.title = \'done\'"></iframe>'
        )
        page.goto(elsewhere.url + "/frame")
        page.wait_for_function("document.title === 'done'")
        framed = page.frames[1]
        assert not framed.url.startswith(restmq.url) or framed.locator("#rows").count() == 0

        violations: list[str] = []
        page.on(
            "console", lambda message: violations.append(message.text) if "Content Security" in message.text else None
        )
        for path in ("/", "/j/jobs", "/docs"):
            response = page.goto(restmq.url + path)
            assert response is not None and response.headers["x-frame-options"] == "DENY"
        page.goto(restmq.url + "/")
        page.wait_for_selector('#live:text("live")')
        page.goto(restmq.url + "/j/jobs")
        page.wait_for_selector('tr[data-key="jobs:1"]')
        assert violations == []
