"""`restmq serve --server granian` in real processes: REST, SSE, WebSocket, TLS, --workers 2, the
idle and frame limits, start-up errors, and SIGTERM (streams end, in-flight requests finish, the
process exits 0, nothing acknowledged is lost, the engine stops last) and kill -9."""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.auth import restmq_cli, ws_session
from tests.helpers.queues import add
from tests.helpers.rawhttp import closed_by_server, raw_connection, read_response
from tests.helpers.server import ServeProcess, free_port, serve
from tests.helpers.streams import SSEReader, WSReader, sse, wait_consumers, ws, ws_url
from tests.helpers.wait import process_gone, wait_until
from tests.integration.test_config import table
from tests.integration.test_shutdown import start_reader
from tests.integration.test_workers import consumers_on_both, processes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRANIAN = ["--server", "granian"]


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (granian's workers, the engine, the resource tracker)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(stat.parent.name))
    return found


def workers_of(pid: int) -> set[int]:
    """granian's worker processes of the `restmq serve` process `pid`."""
    found = set()
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def granian_process(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `restmq serve --server granian` for the module's API tests."""
    with serve(["--redis", engine.url, *GRANIAN], tmp_path_factory.mktemp("granian"), "granian") as process:
        yield process


@pytest.fixture
def granian(granian_process: ServeProcess, redis_url: str) -> ServeProcess:
    """The same server on a freshly flushed engine (`redis_url` flushes it)."""
    return granian_process


# -- the API -----------------------------------------------------------------------------------


def test_post_then_get(granian: ServeProcess) -> None:
    with httpx.Client(base_url=granian.url, timeout=10) as client:
        added = client.post("/q/jobs", data={"value": "on granian"})
        assert added.status_code == 200 and added.text == "jobs:1\r\n", added.text
        got = client.get("/q/jobs")
        assert got.status_code == 200 and got.json() == {"key": "jobs:1", "value": "on granian", "count": 1}
        assert got.headers["x-request-id"]
        assert client.get("/q/jobs").status_code == 204


def test_batch_add(granian: ServeProcess) -> None:
    values = [f"item {i}" for i in range(500)]
    with httpx.Client(base_url=granian.url, timeout=30) as client:
        added = client.post("/q/batch", json=values)
        assert added.status_code == 200, added.text
        assert added.json()["keys"] == [f"batch:{i}" for i in range(1, 501)]
        assert client.get("/stats/batch").json()["length"] == 500
        got = client.get("/q/batch", params={"count": 500})
        assert [m["value"] for m in got.json()] == values


async def test_an_sse_stream_receives_a_posted_message(granian: ServeProcess) -> None:
    async with sse(granian.url, "live") as reader, httpx.AsyncClient(timeout=10) as client:
        await wait_consumers(client, granian.url, "live", 1)
        key = await add(client, "live", "streamed", base=granian.url)
        await reader.wait_count(1)
        assert reader.messages == [{"key": key, "value": "streamed"}]
        assert reader.response is not None
        assert reader.response.headers["content-type"].startswith("text/event-stream")


async def test_a_websocket_receives_a_message_and_answers_commands(granian: ServeProcess) -> None:
    async with ws(granian.url, "sock") as reader, httpx.AsyncClient(timeout=10) as client:
        await wait_consumers(client, granian.url, "sock", 1)
        key = await add(client, "sock", "pushed", base=granian.url)
        await reader.wait_count(1)
        assert reader.messages == [{"key": key, "value": "pushed"}]
        reply = await reader.command({"cmd": "add", "value": "from the socket"})
        assert reply["queue"] == "sock", reply


# -- server-level limits: idle connections, WebSocket frames -------------------------------------


async def test_idle_connections_and_oversized_frames(redis_url: str, tmp_path: Path) -> None:
    args = ["--redis", redis_url, *GRANIAN, "--idle-timeout", "1", "--max-frame", "1024"]
    with serve(args, tmp_path) as server:
        async with raw_connection(server.url) as (reader, writer):  # idle after a response
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            assert (await read_response(reader, timeout=5))[0] == 200
            assert await closed_by_server(reader, timeout=5)
        async with raw_connection(server.url) as (reader, writer):  # a request that never completes
            writer.write(b"GET /health HTTP/1.1\r\nHost: te")
            await writer.drain()
            assert await closed_by_server(reader, timeout=5)

        url = ws_url(server.url, "frames")
        big = '{"cmd":"add","value":"' + "x" * 2048 + '"}'
        outcome = await ws_session(url, send=[big])
        assert outcome.close_code == 1009 and not outcome.frames, outcome
        small = await ws_session(url, send=['{"cmd":"add","value":"fits"}'], expect_frames=1)
        assert small.frames[0]["key"] == "frames:1"  # the big frame added nothing
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/stats/frames")).json()["added"] == 1


# -- TLS, workers, configuration, start-up errors ------------------------------------------------


async def test_two_workers_serve(engine: EmbeddedEngine, redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True)
    with serve(["--redis", redis_url, *GRANIAN, "--workers", "2"], tmp_path, "workers") as server:
        assert len(workers_of(server.proc.pid)) == 2
        async with (
            consumers_on_both(server.url, "news", client) as readers,
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        ):
            assert len(processes(client, "news")) == 2
            sent = [await add(http, "news", f"n{i}", base=server.url) for i in range(20)]
            for reader in readers:
                await reader.wait_count(len(sent), timeout=20)
                assert reader.keys == sent
    client.close()
    assert server.proc.returncode == 0, server.log()


def test_the_config_file_and_restmq_config(tmp_path: Path) -> None:
    config = tmp_path / "restmq.toml"
    config.write_text('server = "granian"\n')
    result = restmq_cli("config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert table(result.stdout)["--server"] == ("granian", "config file")
    result = restmq_cli("config")
    assert table(result.stdout)["--server"] == ("uvicorn", "default")
    result = restmq_cli("serve", "--server", "hypercorn", "--redis", "redis://127.0.0.1:1")
    assert result.returncode == 2 and "Invalid value for '--server'" in result.stderr, result.stderr


def test_a_port_in_use_fails_clearly(redis_url: str, tmp_path: Path) -> None:
    with serve(["--redis", redis_url, *GRANIAN], tmp_path, "first") as first:
        result = restmq_cli("serve", "--redis", redis_url, *GRANIAN, "--port", str(first.port))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in result.stderr
        assert "Traceback" not in result.stderr
        assert httpx.get(first.url + "/health").status_code == 200


# -- stopping ------------------------------------------------------------------------------------


def engine_pid(data_dir: Path) -> int:
    return int((data_dir / "valkey.pid").read_text().strip())


async def test_sigterm_ends_streams_exits_0_and_keeps_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServeProcess(["--data-dir", str(data), *GRANIAN, "--log-format", "json"], free_port(), tmp_path / "1.log")
    readers: list[SSEReader | WSReader] = []
    try:
        await asyncio.to_thread(server.wait_ready)
        workers, engine = workers_of(server.proc.pid), engine_pid(data)
        assert len(workers) == 1
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.post("/q/kept", data={"value": "still here"})).status_code == 200
            readers = [await start_reader(SSEReader(f"{server.url}/sse/live"))]
            readers.append(await start_reader(WSReader(ws_url(server.url, "live"))))
            await wait_consumers(client, server.url, "live", 2)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.to_thread(server.proc.wait, 20)
        took = time.monotonic() - signalled
        assert code == 0, server.log()
        assert took <= 12, f"shutdown took {took:.1f}s\n{server.log()}"
        for reader in readers:
            await reader.wait_ended(timeout=10)
    finally:
        for reader in readers:
            await reader.close()
        server.stop()
    sse_reader, ws_reader = readers
    assert isinstance(sse_reader, SSEReader) and isinstance(ws_reader, WSReader)
    assert sse_reader.events and sse_reader.events[-1].retry == 250, sse_reader.raw[-200:]
    assert ws_reader.close_code == 1012, (ws_reader.close_code, ws_reader.close_reason)
    assert all(process_gone(pid) for pid in (*workers, engine))
    log = server.log()
    for line in log.splitlines():  # granian's own lines too go through RestMQ's JSON formatter
        assert isinstance(orjson.loads(line), dict), line
    messages = [orjson.loads(line)["message"] for line in log.splitlines()]
    assert messages.index("Granian shutdown completed, see ya!") < messages.index("RestMQ stopped")

    with serve(["--data-dir", str(data), *GRANIAN], tmp_path, "second") as second:
        got = httpx.get(second.url + "/q/kept")
        assert got.json() == {"key": "kept:1", "value": "still here", "count": 1}


def test_kill_9_leaves_no_worker_and_no_engine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(["--data-dir", str(data), *GRANIAN, "--workers", "2"], tmp_path, "killed") as killed:
        assert httpx.post(killed.url + "/q/jobs", data={"value": "survives"}).status_code == 200
        workers, engine = workers_of(killed.proc.pid), engine_pid(data)
        assert len(workers) == 2
        killed.kill(signal.SIGKILL)
        for pid in (*workers, engine):
            wait_until(functools.partial(process_gone, pid), 15, 0.05, f"pid {pid} to exit with its server")
    with serve(["--data-dir", str(data), *GRANIAN], tmp_path, "after") as after:  # the data dir is free
        assert httpx.get(after.url + "/q/jobs").json()["value"] == "survives"
