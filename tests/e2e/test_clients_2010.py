"""The 2010 repository's own clients (issue 17), ported to Python 3 with the smallest changes
(tests/e2e/clients2010/README.md), against a real `restmq serve --compat 2010`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from restmq.web.py2json import dumps
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).parent / "clients2010"
ORIGINAL_URL = "http://localhost:8888"
JQUERY_URL = "http://ajax.googleapis.com/ajax/libs/jquery/1.3.2/jquery.min.js"
DEBIAN_JQUERY = "/usr/share/javascript/jquery/jquery.min.js"  # libjs-jquery: no network in the tests


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url, "--compat", "2010"], tmp_path, "compat2010") as process:
        yield process


def pointed_at(name: str, server: ServeProcess, tmp_path: Path) -> Path:
    """The client with the 2010 server's address replaced by the test server's."""
    script = tmp_path / name
    script.write_text((CLIENTS / name).read_text().replace(ORIGINAL_URL, server.url))
    return script


def test_request_example_prints_the_new_key(server: ServeProcess, tmp_path: Path) -> None:
    script = pointed_at("request_2010.py", server, tmp_path)
    run = subprocess.run([sys.executable, script], capture_output=True, timeout=60, check=True)
    assert run.stdout == b"test:1\r\n\n"  # the key and \r\n as 2010 answered it, and print's newline


def test_map_example_feeds_the_reducer_queue(server: ServeProcess, tmp_path: Path) -> None:
    script = pointed_at("map_2010.py", server, tmp_path)
    book = tmp_path / "bookfrag-aa"
    book.write_text("In the beginning was the word\nand the word was counted\n")
    run = subprocess.run([sys.executable, script, book], capture_output=True, timeout=60, check=True)
    assert run.stdout.decode() == f"Sent: {book}: 11\n"
    message = httpx.get(server.url + "/q/reducer").json()
    assert orjson.loads(message["value"]) == {"filename": str(book), "count": 11}


def test_rest_example_runs_its_tour_and_ends_on_a_comet_stream(server: ServeProcess, tmp_path: Path) -> None:
    script = pointed_at("rest_2010.sh", server, tmp_path)
    transcript = tmp_path / "transcript"
    with open(transcript, "wb") as out:
        tour = subprocess.Popen(
            ["stdbuf", "-o0", "bash", script], stdout=out, stderr=subprocess.DEVNULL, start_new_session=True
        )
    try:
        wait_until(lambda: b"COMET (" in transcript.read_bytes(), 60, 0.05, "the tour to reach its COMET stream")
        # delivered live, or as backlog when the stream opens (stdbuf: curl writes to a file unbuffered, as to a
        # terminal)
        httpx.post(server.url + "/q/test", data={"value": "from the other term"})
        wait_until(lambda: b"from the other term" in transcript.read_bytes(), 30, 0.05, "the message on the stream")
    finally:
        os.killpg(tour.pid, signal.SIGTERM)
        tour.wait(30)
    check_transcript(transcript.read_bytes(), httpx.get(server.url + "/stats/test").json()["redis"])


def check_transcript(output: bytes, redis: str) -> None:
    data, rest = output.split(b"QUEUE CONTROL\n", 1)
    control, rest = rest.split(b"QUEUE POLICY\n", 1)
    policy, comet = rest.split(b"COMET (", 1)
    # QUEUE DATA: the index add, a soft get, a REST add, a REST get (default shape: docs/compat.md)
    assert data.startswith(b'QUEUE DATA\ntest:1\r\n{"queue": "test", "count": 1, "value": "foobar", "key": "test:1"}')
    assert b"test:2\r\n" in data
    status = {n: dumps({"redis": redis, "queue": "test", "status": {"queue": "test", "status": n}}) for n in (0, 1)}
    expected_control = (
        f"{status[1]}\r\n"
        '{"stat": {"queue": "test", "status": 0}}\r\n'
        f"{status[0]}\r\n"
        '{"stat": {"queue": "test", "status": 1}}\r\n'
        f"{status[1]}\r\n"
    ).encode()
    assert control.startswith(expected_control), control
    assert orjson.loads(control[len(expected_control) :]) == {"queue": "test", "status": 1}  # DELETE: test:2 went
    # QUEUE POLICY: "unknown" for a policy never set, as 2010 said
    assert policy.startswith(b'{"queue": "test", "value": "unknown"}\r\n'), policy
    assert policy.count(b"HTTP/1.1 200 OK\r\n") == 2 and policy.count(b"\r\n\r\nOK\r\n") == 2
    assert b'{"queue": "test", "value": "roundrobin"}\r\n' in policy
    assert policy.rstrip().endswith(b'{"queue": "test", "value": "broadcast"}')
    assert b'"value":"from the other term"' in comet


def test_interact_page_gets_its_echo_and_the_queues_messages(redis_url: str, tmp_path: Path, page: Any) -> None:
    """contrib/interact.html, unchanged but for the address, from a web server of its own: its origin is allowed
    with --cors-origin, as docs/compat.md says."""
    site = tmp_path / "site"
    site.mkdir()
    site_port = free_port()
    origin = f"http://127.0.0.1:{site_port}"
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", site, str(site_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    args = ["--redis", redis_url, "--compat", "2010", "--cors-origin", origin]
    try:
        with serve(args, tmp_path, "interact") as server:
            html = (CLIENTS / "interact.html").read_text()
            (site / "interact.html").write_text(html.replace("ws://localhost:8888", server.url.replace("http", "ws")))
            page.route(JQUERY_URL, lambda route: route.fulfill(path=DEBIAN_JQUERY, content_type="text/javascript"))
            wait_until(lambda: answers(origin + "/interact.html"), 30, 0.05, "the page's web server")
            page.goto(origin + "/interact.html")
            expect(page.locator("#debug")).to_contain_text("connected...")
            page.fill("#i1", "hello from the browser")
            page.press("#i1", "Tab")  # the entry's onchange sends it
            expect(page.locator("#out")).to_have_text("hello from the browser")
            httpx.post(server.url + "/q/test", data={"value": "delivered"})
            expect(page.locator("#out")).to_have_text('{"key":"test:1","value":"delivered"}')
    finally:
        web.terminate()
        web.wait(30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def test_index_page_lists_the_queues_and_stops_one(server: ServeProcess, page: Any) -> None:
    for value in ("a", "b"):
        httpx.post(server.url + "/q/jobs", data={"value": value})
    page.goto(server.url + "/")
    assert page.url == server.url + "/static/index.html"
    row = page.locator("#queues tr", has_text="jobs")
    expect(row).to_contain_text("2")
    expect(row).to_contain_text("started")
    row.get_by_role("button", name="stop").click()
    expect(row).to_contain_text("stopped")
    assert httpx.get(server.url + "/control/jobs").json()["status"]["status"] == 0


def test_help_page_sends_a_command(server: ServeProcess, page: Any) -> None:
    page.goto(server.url + "/queue")
    assert page.url == server.url + "/static/help.html"
    page.get_by_role("button", name="send").click()
    expect(page.locator("#reply")).to_have_text('200\n{"queue": "test", "value": "hello", "key": "test:1"}')
