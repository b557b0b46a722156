"""The client commands of `restmq`, run as subprocesses against `restmq serve` in a subprocess.

(The in-process test server runs in the test's event loop: a blocking subprocess.run would stall it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMANDS = [
    "add", "get", "take", "ack", "release", "tail", "stats", "policy", "control", "purge", "redrive", "bench",
    "ring",
]  # fmt: skip


@pytest.fixture(scope="module")
def restmq_server(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serve(["--redis", engine.url], tmp_path_factory.mktemp("cli")) as process:
        yield process


@pytest.fixture
def url(restmq_server: ServeProcess, redis_url: str) -> str:
    """The server's URL, over a freshly flushed backend."""
    return restmq_server.url


def cli(
    url: str, *args: str, stdin: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "restmq", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RESTMQ_URL": url, "COLUMNS": "200", **env},
    )


def stats(url: str, queue: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/stats/{queue}", timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_add_one_and_read_it_back(url: str) -> None:
    added = cli(url, "add", "jobs", "hello world")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "jobs:1\n"
    assert cli(url, "add", "jobs", "second", "--priority", "9").stdout == "jobs:2\n"
    got = cli(url, "get", "jobs", "--json")
    assert got.returncode == 0 and json.loads(got.stdout) == {"key": "jobs:2", "value": "second", "count": 1}
    taken = cli(url, "take", "jobs")
    assert (taken.returncode, taken.stdout) == (0, "hello world\n")
    empty = cli(url, "get", "jobs")
    assert empty.returncode == 3 and empty.stdout == ""
    assert one_line(empty.stderr) == "restmq: queue jobs is empty"


def test_bulk_add_of_100000_lines_shows_progress_and_stores_them_all(url: str, tmp_path: Path) -> None:
    source = tmp_path / "messages.txt"
    source.write_text("".join(f"message {i}\n" for i in range(100_000)))
    result = cli(url, "add", "bulk", "--file", str(source))
    assert result.returncode == 0, result.stderr
    assert "100000/100000" in result.stderr and "100%" in result.stderr  # the progress bar, at its end
    assert "added 100,000 messages to bulk" in result.stderr and "/s" in result.stderr  # the final rate
    assert result.stdout == ""
    assert stats(url, "bulk")["length"] == 100_000
    first_last = cli(url, "get", "bulk", "--json")
    assert json.loads(first_last.stdout)["value"] == "message 0"


def test_add_from_stdin_and_from_a_json_array(url: str, tmp_path: Path) -> None:
    piped = cli(url, "add", "lines", "-", "--batch-size", "2", stdin="a\nb\n\nc\n")
    assert piped.returncode == 0, piped.stderr
    assert "added 3 messages" in piped.stderr
    assert cli(url, "take", "lines", "-n", "10").stdout == "a\nb\nc\n"
    array = tmp_path / "items.json"
    array.write_text(json.dumps(["x", {"y": 1}, [2]]))
    added = cli(url, "add", "arr", "-f", str(array), "--keys")
    assert added.returncode == 0 and added.stdout.split() == ["arr:1", "arr:2", "arr:3"]
    values = [json.loads(line)["value"] for line in cli(url, "take", "arr", "-n", "5", "--json").stdout.splitlines()]
    assert values == ["x", '{"y":1}', "[2]"]
    nothing = cli(url, "add", "arr", "-", stdin="\n\n")
    assert nothing.returncode == 3 and "nothing added" in one_line(nothing.stderr)


def test_lease_ack_and_release(url: str) -> None:
    cli(url, "add", "work", "w")
    leased = cli(url, "get", "work", "--lease", "30", "--json")
    assert leased.returncode == 0, leased.stderr
    message = json.loads(leased.stdout)
    assert message["key"] == "work:1" and stats(url, "work")["leased"] == 1
    released = cli(url, "release", "work:1", "--count", "1")
    assert released.returncode == 0 and released.stdout == "released work:1 (delivery 1)\n"
    again = cli(url, "take", "work", "--lease", "30")
    assert again.stdout == "w\n" and "restmq ack work:1" in again.stderr
    acked = cli(url, "ack", "work:1")
    assert acked.returncode == 0 and acked.stdout == "acked work:1 (delivery 2)\n"
    assert stats(url, "work")["leased"] == 0


def test_soft_get_leaves_the_message(url: str) -> None:
    cli(url, "add", "soft", "s")
    assert cli(url, "get", "soft", "--soft").stdout == "s\n"
    assert stats(url, "soft")["length"] == 1
    assert cli(url, "get", "soft", "--soft", "--count", "2").returncode == 2


def test_tail_prints_messages_in_order(url: str) -> None:
    tail = subprocess.Popen(
        [sys.executable, "-m", "restmq", "tail", "live", "--json", "--count", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RESTMQ_URL": url},
    )
    try:
        wait_until(lambda: stats(url, "live")["consumers"] == 1, 20, 0.05, "tail to connect")
        for i in range(50):
            response = httpx.post(f"{url}/q/live", data={"value": f"v{i}"}, timeout=10)
            assert response.status_code == 200
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["key"] for m in messages] == [f"live:{i}" for i in range(1, 51)]
    assert [m["value"] for m in messages] == [f"v{i}" for i in range(50)]


def test_tail_plain_values(url: str) -> None:
    tail = subprocess.Popen(
        [sys.executable, "-m", "restmq", "tail", "plain", "-n", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RESTMQ_URL": url},
    )
    try:
        wait_until(lambda: stats(url, "plain")["consumers"] == 1, 20, 0.05, "tail to connect")
        httpx.post(f"{url}/q/plain", json=["one", "two"], timeout=10)
        out, _ = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert out == "one\ntwo\n"


def test_stats_table_json_and_watch(url: str) -> None:
    cli(url, "add", "st", "x")
    table = cli(url, "stats")
    assert table.returncode == 0 and "st" in table.stdout and "length" in table.stdout
    one = cli(url, "stats", "st")
    assert "queue st" in one.stdout and "added" in one.stdout
    data = json.loads(cli(url, "stats", "st", "--json").stdout)
    assert data["length"] == 1 and data["queue"] == "st"
    everything = json.loads(cli(url, "stats", "--json").stdout)
    assert any(q["queue"] == "st" for q in everything["queues"])
    watched = cli(url, "stats", "st", "--json", "--watch", "--interval", "0.1", "--times", "3")
    assert watched.returncode == 0 and len(watched.stdout.splitlines()) == 3


def test_policy_control_purge_redrive(url: str) -> None:
    assert cli(url, "policy", "pq").stdout == "pq broadcast\n"
    assert cli(url, "policy", "pq", "roundrobin").stdout == "pq roundrobin\n"
    assert cli(url, "policy", "pq", "sideways").returncode == 2
    assert cli(url, "control", "pq").stdout == "pq start max_deliveries=0\n"
    assert cli(url, "control", "pq", "stop", "--max-deliveries", "2").stdout == "pq stop max_deliveries=2\n"
    assert stats(url, "pq")["status"] == "stop"
    assert cli(url, "control", "pq", "start").stdout == "pq start max_deliveries=2\n"
    cli(url, "add", "pq", "a")
    cli(url, "add", "pq", "b")
    refused = cli(url, "purge", "pq", stdin="n\n")
    assert refused.returncode == 1 and stats(url, "pq")["length"] == 2
    purged = cli(url, "purge", "pq", "--yes")
    assert purged.returncode == 0 and purged.stdout == "removed 2 messages from pq\n"
    confirmed = cli(url, "purge", "pq", stdin="y\n")
    assert confirmed.returncode == 0 and confirmed.stdout == "removed 0 messages from pq\n"
    nothing = cli(url, "redrive", "pq")
    assert nothing.returncode == 3 and one_line(nothing.stderr) == "restmq: no dead letters in pq:dead"


def test_exit_codes_and_one_line_errors(url: str) -> None:
    unreachable = cli(f"http://127.0.0.1:{free_port()}", "get", "q")
    assert unreachable.returncode == 4
    assert one_line(unreachable.stderr).startswith("restmq: error: cannot connect to RestMQ at http://127.0.0.1:")
    flag = cli(url, "stats", "--url", f"http://127.0.0.1:{free_port()}")
    assert flag.returncode == 4
    refused = cli(url, "ack", "q:999")
    assert refused.returncode == 1
    assert "MESSAGE_NOT_FOUND" in one_line(refused.stderr) and one_line(refused.stderr).startswith("restmq: error:")
    stale = cli(url, "get", "q", "--wait", "1000")
    assert stale.returncode == 2  # click refuses the range before any request
    assert cli(url, "get").returncode == 2
    assert cli(url, "add", "q").returncode == 2
    assert cli(url, "nonsense").returncode == 2


def test_token_is_sent_as_bearer(url: str) -> None:
    """The server refuses a token it does not know (401 TOKEN_INVALID): proof that RESTMQ_TOKEN was sent."""
    result = cli(url, "stats", "--json", RESTMQ_TOKEN="rmq_notreal_notreal")
    assert result.returncode == 1
    assert "TOKEN_INVALID" in one_line(result.stderr) and "HTTP 401" in result.stderr
    flag = cli(url, "stats", "--token", "rmq_notreal_notreal")
    assert flag.returncode == 1 and "TOKEN_INVALID" in flag.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = cli("http://127.0.0.1:1", command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m restmq " + command in result.stdout
    assert "Exit codes" in result.stdout
    if command not in ("bench",):
        assert "RESTMQ_URL" in result.stdout


def test_bench_reports_rates_and_latency(url: str) -> None:
    result = cli(url, "bench", "-n", "300", "-p", "2", "-c", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["published"] == report["consumed"] == 300
    assert report["publish_rate"] > 0 and report["consume_rate"] > 0
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert stats(url, report["queue"])["length"] == 0
    table = cli(url, "bench", "-n", "200", "--batch", "50", "--take", "50", "--lease", "30")
    assert table.returncode == 0, table.stderr
    assert "publish" in table.stdout and "consume" in table.stdout and "p99" in table.stdout
    assert "published" in table.stderr  # the live progress
