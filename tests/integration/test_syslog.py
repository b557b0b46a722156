"""`--syslog-port` (issue 17): the real `logger` sends RFC 5424 and RFC 3164 messages over TCP (newline framing
and RFC 6587 octet counting) and UDP, and each arrives as JSON in `syslogd:<host>`; malformed and oversize lines
are counted and logged while the listener goes on; connections are bounded; the source allow-list holds; the
listener runs in every worker and ends with the server."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.server import ServeProcess, free_port, run_app
from tests.helpers.wait import wait_for, wait_until

pytestmark = pytest.mark.integration

LOGGER = shutil.which("logger") or "/usr/bin/logger"
HOSTNAME = socket.gethostname()
needs_logger = pytest.mark.skipif(not Path(LOGGER).exists(), reason="logger (bsdutils) is not installed")


async def logger(port: int, *options: str, message: str) -> None:
    """util-linux `logger` to 127.0.0.1:`port`; fails the test if it does."""
    process = await asyncio.create_subprocess_exec(
        LOGGER, "--server", "127.0.0.1", "--port", str(port), *options, message,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def drain(http: httpx.AsyncClient, queue: str) -> list[dict[str, Any]]:
    answer = await http.get(f"/q/{queue}", params={"count": 1000})
    if answer.status_code == 204:
        return []
    assert answer.status_code == 200, answer.text
    return [orjson.loads(item["value"]) for item in answer.json()]


async def collect(http: httpx.AsyncClient, queue: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The first `count` messages to reach `queue` (waiting for them)."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        found.extend(await drain(http, queue))
        return len(found) >= count

    await wait_for(enough, timeout, 0.02, f"{count} message(s) in {queue}")
    return found


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    text = (await http.get("/metrics")).text
    shown = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}{{{shown}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def send_tcp(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server ends the connection (a close, or a reset when data it never read was waiting)."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


@needs_logger
@pytest.mark.parametrize(
    "options",
    [
        ("--tcp", "--rfc5424"),
        ("--tcp", "--rfc5424", "--octet-count"),
        ("--tcp", "--rfc3164"),
        ("--tcp", "--rfc3164", "--octet-count"),
        ("--udp", "--rfc5424"),
        ("--udp", "--rfc3164"),
    ],
    ids=lambda options: "-".join(o.strip("-") for o in options),
)
async def test_logger_messages_arrive_as_json_in_the_hosts_queue(redis_url: str, options: tuple[str, ...]) -> None:
    port = free_port()
    rfc5424 = "--rfc5424" in options
    extra = ("--msgid", "ID7", "--sd-id", "origin@32473", "--sd-param", 'ip="10.1.2.3"') if rfc5424 else ()
    async with run_app(redis_url, syslog_port=port) as url, httpx.AsyncClient(base_url=url) as http:
        await logger(port, *options, "-t", "billing", "-p", "local3.err", "-i", *extra, message="disk é full")
        host = HOSTNAME if rfc5424 else HOSTNAME.split(".")[0]
        (record,) = await collect(http, f"syslogd:{host}", 1)
    assert record["facility"] == "local3" and record["severity"] == "err" and record["priority"] == 19 * 8 + 3
    assert record["host"] == host and record["app"] == "billing" and record["procid"] is not None
    assert record["message"] == "disk é full" and record["peer"] == "127.0.0.1" and record["timestamp"]
    assert record["protocol"] == ("rfc5424" if rfc5424 else "rfc3164")
    if rfc5424:
        assert record["msgid"] == "ID7" and record["structured_data"]["origin@32473"] == {"ip": "10.1.2.3"}


@needs_logger
async def test_malformed_and_oversize_lines_are_counted_logged_and_skipped(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, "restmq.syslog")
    async with run_app(redis_url, syslog_port=port, syslog_max_line=480) as url, httpx.AsyncClient(base_url=url) as h:
        long = "x" * 1000
        await logger(port, "--tcp", "--size", "4096", message=long)  # newline framing
        await logger(port, "--tcp", "--octet-count", "--size", "4096", message=long)
        await logger(port, "--udp", "--size", "4096", message=long)
        await send_tcp(port, b"no priority here\n12x4 not a length\n<999>bad priority\n<13>1 - h\xff a - - - x\n")
        await send_tcp(port, b"<13>1 - after-junk app - - - still listening\n")
        (record,) = await collect(h, "syslogd:after-junk", 1)
        assert record["message"] == "still listening"

        async def counted() -> bool:
            outcomes = ("malformed", "oversize", "queued")
            return [await metric(h, "restmq_syslog_messages_total", outcome=o) for o in outcomes] == [4, 3, 1]

        # the UDP datagram and the TCP lines are read by different endpoints: wait until all of them are counted
        await wait_for(counted, 10, 0.02, "4 malformed, 3 oversize and 1 queued line counted")
        assert (await h.get(f"/q/syslogd:{HOSTNAME}")).status_code == 204  # nothing of the long lines
    assert any("malformed" in record.getMessage() for record in caplog.records)
    assert any("oversize" in record.getMessage() for record in caplog.records)


async def test_many_connections_at_once_and_the_connection_limit(redis_url: str) -> None:
    port = free_port()
    async with run_app(redis_url, syslog_port=port, syslog_max_connections=20) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            lines = [b"<14>1 - many app - - - message %d\n" % n for n in range(60)]
            for start in range(0, 60, 20):  # 20 at a time: at the limit, never over it
                await asyncio.gather(*(send_tcp(port, line) for line in lines[start : start + 20]))
            found = await collect(http, "syslogd:many", 60)
            assert sorted(record["message"] for record in found) == sorted(f"message {n}" for n in range(60))

            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]

            async def all_open() -> bool:
                return await metric(http, "restmq_syslog_connections") == 20

            await wait_for(all_open, 10, 0.02, "20 syslog connections open")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await closed_by_server(reader)  # the 21st is closed at once
            writer.close()
            assert await metric(http, "restmq_syslog_connections_refused_total", reason="limit") == 1
            for _, held_writer in held:
                held_writer.write(b"<14>1 - many app - - - still served\n")
                held_writer.close()
            found = await collect(http, "syslogd:many", 20)
            assert {record["message"] for record in found} == {"still served"}


async def test_the_source_allow_list(redis_url: str) -> None:
    port = free_port()
    async with run_app(redis_url, syslog_port=port, syslog_allow=("10.0.0.0/8",)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"<14>1 - outsider app - - - let me in\n")
            assert await closed_by_server(reader)
            writer.close()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"<14>1 - outsider app - - - over udp", ("127.0.0.1", port))

            async def refused() -> bool:
                return await metric(http, "restmq_syslog_messages_total", outcome="refused") == 1

            await wait_for(refused, 10, 0.02, "the datagram refused")
            assert await metric(http, "restmq_syslog_connections_refused_total", reason="source") == 1
            assert (await http.get("/q/syslogd:outsider")).status_code == 204
    async with run_app(redis_url, syslog_port=port, syslog_allow=("127.0.0.0/8", "::1")) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            await send_tcp(port, b"<14>1 - insider app - - - welcome\n")
            assert [r["message"] for r in await collect(http, "syslogd:insider", 1)] == ["welcome"]


async def test_queue_names_prefix_and_the_fallback_queue(redis_url: str) -> None:
    port = free_port()
    async with run_app(redis_url, syslog_port=port, syslog_queue_prefix="logs.") as url:
        async with httpx.AsyncClient(base_url=url) as http:
            await send_tcp(port, b"<14>1 - web-1 app - - - named\n<14>1 - a/b app - - - slashed\n<14>no host\n")
            assert [r["message"] for r in await collect(http, "logs.web-1", 1)] == ["named"]
            (fallback,) = await collect(http, "logs._invalid", 1)
            assert fallback["host"] == "a/b" and fallback["message"] == "slashed"
            (by_peer,) = await collect(http, "logs.127.0.0.1", 1)  # no host name: the sender's address
            assert by_peer["host"] is None and by_peer["message"] == "no host"


def test_a_syslog_listener_off_loopback_needs_an_allow_list(redis_url: str, tmp_path: Path) -> None:
    args = ["--redis", redis_url, "--syslog-port", str(free_port()), "--syslog-host", "0.0.0.0"]
    refused = ServeProcess(args, free_port(), tmp_path / "refused.log")
    assert refused.start_outcome() == 2
    assert "--syslog-allow" in refused.log()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = ServeProcess(["--redis", redis_url, "--syslog-port", str(taken.getsockname()[1])], free_port(),
                              tmp_path / "in_use.log")  # fmt: skip
        assert in_use.start_outcome() == 1
        assert "cannot listen" in in_use.log()


@pytest.mark.slow
@pytest.mark.parametrize(("server", "workers"), [("uvicorn", 1), ("uvicorn", 2), ("granian", 2)])
def test_every_worker_listens_and_the_listener_ends_with_the_server(
    redis_url: str, tmp_path: Path, server: str, workers: int
) -> None:
    port = free_port()
    args = ["--redis", redis_url, "--syslog-port", str(port), "--workers", str(workers), "--server", server]
    process = ServeProcess(args, free_port(), tmp_path / "serve.log").wait_ready()
    try:
        wait_until(lambda: process.log().count("syslog: listening") == workers, 20, 0.05, "every worker listening")
        idle = socket.create_connection(("127.0.0.1", port))  # left open: shutdown must not wait for it
        for n in range(40):
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"<14>1 - workers app - - - message %d\n" % n)
        found: list[Any] = []

        def arrived() -> bool:
            answer = httpx.get(f"{process.url}/q/syslogd:workers", params={"count": 1000})
            found.extend(answer.json() if answer.status_code == 200 else [])
            return len(found) >= 40

        wait_until(arrived, 20, 0.05, "40 messages")
        process.kill(signal.SIGTERM)
        assert process.proc.returncode == 0, process.log()
        idle.close()
    finally:
        process.stop()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):  # nobody listens any more (TIME_WAIT is no listener)
        with socket.socket(socket.AF_INET, kind) as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))


async def test_messages_read_while_the_backend_is_down_are_queued_when_it_is_back(
    own_engine: EmbeddedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "restmq.syslog")
    port = free_port()
    async with run_app(own_engine.url, syslog_port=port) as url, httpx.AsyncClient(base_url=url) as http:
        own_engine.stop()
        await send_tcp(port, b"".join(b"<14>1 - outage app - - - during %d\n" % n for n in range(5)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"<14>1 - outage app - - - during udp", ("127.0.0.1", port))

        async def retrying() -> bool:
            return any("backend unavailable, retrying" in record.getMessage() for record in caplog.records)

        await wait_for(retrying, 20, 0.02, "the listener retrying against the stopped backend")
        await asyncio.to_thread(own_engine.start)
        found = await collect(http, "syslogd:outage", 6, timeout=30)
        assert sorted(record["message"] for record in found) == ["during 0", "during 1", "during 2", "during 3",
                                                                 "during 4", "during udp"]  # fmt: skip
        assert await metric(http, "restmq_syslog_messages_total", outcome="failed") == 0
