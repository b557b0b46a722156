"""The 2010 repository's own clients (issue 17), ported to Python 3 with the smallest changes
(tests/e2e/clients2010/README.md), against a real `restmq serve --compat 2010`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from restmq.web.py2json import dumps
from tests.helpers.server import ServeProcess, serve
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).parent / "clients2010"
ORIGINAL_URL = "http://localhost:8888"


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
    # QUEUE POLICY: 2010 said "unknown" for a policy never set; this server says what is in force (docs/compat.md)
    assert policy.startswith(b'{"queue": "test", "value": "broadcast"}\r\n'), policy
    assert policy.count(b"HTTP/1.1 200 OK\r\n") == 2 and policy.count(b"\r\n\r\nOK\r\n") == 2
    assert b'{"queue": "test", "value": "roundrobin"}\r\n' in policy
    assert policy.rstrip().endswith(b'{"queue": "test", "value": "broadcast"}')
    assert b'"value":"from the other term"' in comet
