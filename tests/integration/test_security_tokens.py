"""Tokens take effect on open connections and on every ring node; rights match effects (issue 13).

Revocation and expiry close the token's open SSE, COMET and WebSocket streams on every server process,
WebSocket commands are authorized when they run, a ring revoke (or create) reaches every node or fails,
a revoked token never comes back with a node, and redrive needs write rights on the queue it fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from restmq.core.store import Store
from restmq.core.tokens import new_token
from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.factory import open_store
from restmq.web import token_watch
from tests.helpers.auth import bearer, create_token_async, restmq_cli, token_id
from tests.helpers.cluster import Cluster
from tests.helpers.server import run_app, serve
from tests.helpers.streams import CometReader, Reader, WSReader, comet, serve_nodes, sse, ws
from tests.helpers.topology import TOPOLOGIES, engine_client, engines, flush_cluster, flush_engines, restart
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLOSE_BOUND = 30.0  # seconds: a few times the 5 s a revocation takes to reach REST, on a busy machine


async def cli(*args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(restmq_cli, *args)
    return result.returncode, result.stdout, result.stderr


async def add_as(base: str, token: str, queue: str, value: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post(f"/q/{queue}", data={"value": value}, headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.text.strip()


async def status_with(base: str, token: str, queue: str = "jobs") -> int:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return (await client.get(f"/q/{queue}", headers=bearer(token))).status_code


async def wait_refused(base: str, token: str, timeout: float = CLOSE_BOUND) -> None:
    async def refused() -> bool:
        status = await status_with(base, token)
        assert status in (204, 401), status
        return status == 401

    await wait_for(refused, timeout, 0.2, f"{base} to refuse the token")


async def wait_all_ended(readers: list[Reader], what: str) -> float:
    """Seconds until every reader's stream was ended by the server (AssertionError after CLOSE_BOUND)."""
    started = time.monotonic()
    for reader in readers:
        await reader.wait_ended(max(0.1, CLOSE_BOUND - (time.monotonic() - started)))
        assert reader.error is None, f"{reader.kind} stream failed instead of ending ({what}): {reader.error!r}"
    return time.monotonic() - started


async def wait_consumers_as(base: str, token: str, queue: str, n: int) -> None:
    async def counted() -> bool:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            reply = await client.get(f"/stats/{queue}", headers=bearer(token))
            assert reply.status_code == 200, reply.text
            return bool(reply.json()["consumers"] == n)

    await wait_for(counted, CLOSE_BOUND, 0.05, f"{n} consumers of {queue}")


def passed(deadline: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return time.time() >= deadline

    return check


def assert_policy_close(reader: WSReader, reason: str) -> None:
    assert reader.close_code == 1008, (reader.close_code, reader.close_reason)
    assert reason in (reader.close_reason or ""), reader.close_reason


# -- item 4: revocation and expiry reach open streams ------------------------------------------------


async def test_revocation_closes_the_tokens_open_streams_on_every_process(redis_url: str, tmp_path: Path) -> None:
    """Issue 13, item 4: SSE, COMET and WebSocket streams opened with a token end once it is revoked, on each
    of two server processes (the revoke is written by the CLI straight into the backend); streams of another
    token stay open and keep receiving."""
    doomed = await create_token_async(redis_url, "jobs", "read,write")
    other = await create_token_async(redis_url, "jobs", "read,write")
    with serve_nodes(redis_url, tmp_path, 2) as (one, two):
        async with (
            sse(one.url, "jobs", token=doomed) as by_sse,
            comet(two.url, "jobs", token=doomed) as by_comet,
            ws(one.url, "jobs", f"token={doomed}") as ws_one,
            ws(two.url, "jobs", f"token={doomed}") as ws_two,
            sse(two.url, "jobs", token=other) as survivor,
        ):
            doomed_readers: list[Reader] = [by_sse, by_comet, ws_one, ws_two]
            await add_as(one.url, doomed, "jobs", "before")  # broadcast: every stream gets it
            for reader in [*doomed_readers, survivor]:
                await reader.wait_count(1, timeout=CLOSE_BOUND)

            code, out, err = await cli("token", "revoke", token_id(doomed), "--redis", redis_url)
            assert code == 0 and f"revoked {token_id(doomed)}" in out, err
            await wait_all_ended(doomed_readers, "revoked")
            for reader in (ws_one, ws_two):
                assert_policy_close(reader, "revoked")

            assert not survivor.ended.is_set()
            await add_as(two.url, other, "jobs", "after")
            await survivor.wait_count(2, timeout=CLOSE_BOUND)
            assert survivor.messages[1]["value"] == "after"
        for process in (one, two):
            assert f"token {token_id(doomed)} revoked" in process.log(), process.log()


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_expiry_closes_the_tokens_open_streams(redis_url: str, tmp_path: Path, http_server: str) -> None:
    """Issue 13, item 4: streams opened with a token that expires end when it expires (on both HTTP servers)."""
    with serve(["--redis", redis_url, "--server", http_server], tmp_path) as server:
        token = await create_token_async(redis_url, "jobs", "read,write", "--expires", "10s")
        # granian sends a COMET response's headers with its first line only: start that reader, see it
        # registered, then add the message that gets every stream going.
        by_comet = CometReader(f"{server.url}/c/jobs", {"token": token})
        comet_started = asyncio.create_task(by_comet._start(CLOSE_BOUND))
        try:
            async with (
                sse(server.url, "jobs", token=token) as by_sse,
                ws(server.url, "jobs", f"token={token}") as by_ws,
            ):
                await wait_consumers_as(server.url, token, "jobs", 3)
                await add_as(server.url, token, "jobs", "while valid")
                await comet_started
                readers: list[Reader] = [by_sse, by_comet, by_ws]
                for reader in readers:
                    await reader.wait_count(1, timeout=CLOSE_BOUND)
                await wait_all_ended(readers, "expired")
                assert_policy_close(by_ws, "expired")
                assert await status_with(server.url, token) == 401
        finally:
            comet_started.cancel()
            await by_comet.close()
        assert f"token {token_id(token)} expired" in server.log(), server.log()


async def test_a_websocket_command_after_revocation_is_refused(redis_url: str, tmp_path: Path) -> None:
    """Issue 13, item 4: a WebSocket keeps no rights of its own; once its token is revoked, a `take` gets an
    error frame or finds the connection closed (with 1008), never a message."""
    token = await create_token_async(redis_url, "jobs", "read,write")
    with serve(["--redis", redis_url], tmp_path) as server:
        async with ws(server.url, "jobs", f"token={token}") as reader:
            assert (await reader.command({"cmd": "take"}))["code"] == "QUEUE_EMPTY"
            code, _, err = await cli("token", "revoke", token_id(token), "--redis", redis_url)
            assert code == 0, err

            async def refused() -> bool:
                if reader.ended.is_set():
                    return True
                try:
                    reply = await reader.command({"cmd": "take"}, timeout=5)
                except (ConnectionClosed, TimeoutError):
                    return reader.ended.is_set()
                assert reply["code"] in ("QUEUE_EMPTY", "TOKEN_INVALID"), reply
                return bool(reply["code"] == "TOKEN_INVALID")

            await wait_for(refused, CLOSE_BOUND, 0.2, "the revoked token's WebSocket commands to be refused")
            if reader.ended.is_set():
                assert_policy_close(reader, "revoked")


async def test_a_websocket_command_after_expiry_is_refused_at_once(redis_url: str, tmp_path: Path) -> None:
    """Issue 13, item 4: expiry is known from the token itself, so the first command after it is refused."""
    with serve(["--redis", redis_url], tmp_path) as server:
        token = await create_token_async(redis_url, "jobs", "read", "--expires", "6s")
        expires_at = time.time() + 6  # no later than this: the CLI stamped it before returning
        async with ws(server.url, "jobs", f"token={token}") as reader:
            assert (await reader.command({"cmd": "take"}))["code"] == "QUEUE_EMPTY"
            await wait_for(passed(expires_at), 15, 0.05, "the token's expiry time to pass")
            try:
                reply = await reader.command({"cmd": "take"}, timeout=10)
            except (ConnectionClosed, TimeoutError):
                assert_policy_close(reader, "expired")
            else:
                assert reply["code"] == "TOKEN_INVALID", reply


async def test_open_streams_cost_one_token_lookup_per_token_not_per_stream(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Issue 13, item 4: the watch re-reads each distinct token of the open streams, in one batched read:
    twenty streams over two tokens cost the backend a couple of commands every check, not twenty."""
    first, second = await asyncio.gather(
        create_token_async(redis_url, "jobs", "read"), create_token_async(redis_url, "jobs", "read")
    )
    async with run_app(redis_url) as base, contextlib.AsyncExitStack() as stack:
        for i in range(20):
            await stack.enter_async_context(sse(base, "jobs", token=first if i % 2 else second))
        redis_client.config_resetstat()
        window = 3 * token_watch.INTERVAL
        await asyncio.sleep(window)  # a rate over a window, not a wait for a condition
        calls = redis_client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)
        checks = window / token_watch.INTERVAL
        assert 2 * (checks - 1) <= calls <= 2 * (checks + 1), calls  # two HMGETs (marks, records) per check


# -- item 5: ring create and revoke reach every node, and a revocation sticks -------------------------


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[list[EmbeddedEngine]]:
    with engines(tmp_path / "ring", 3) as started:
        yield started


def urls_of(nodes: list[EmbeddedEngine]) -> str:
    return ",".join(engine.url for engine in nodes)


async def listed(urls: str) -> str:
    code, out, err = await cli("token", "list", "--redis", urls)
    assert code == 0, err
    return out


async def wait_nodes_up(base: str) -> None:
    async def all_up() -> bool:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return set((await client.get("/ready")).json()["nodes"].values()) == {"up"}

    await wait_for(all_up, CLOSE_BOUND, 0.1, "every ring node to be seen up")


async def test_a_ring_revoke_with_a_node_down_fails_and_the_node_never_brings_the_token_back(
    ring: list[EmbeddedEngine], tmp_path: Path
) -> None:
    """Issue 13, item 5: with one node down, `restmq token revoke` exits non-zero and says so, yet the token
    is refused at once where the revocation reached; when the node returns the token stays refused and
    unlisted, even once the nodes that saw the revoke are gone; a second revoke then completes."""
    urls = urls_of(ring)
    token = await create_token_async(urls, "jobs", "read")
    ident = token_id(token)
    with serve(["--redis", urls], tmp_path) as server:
        assert await status_with(server.url, token) == 204
        ring[1].stop()
        code, out, err = await cli("token", "revoke", ident, "--redis", urls)
        assert code != 0, (out, err)
        assert "unreachable" in err and ring[1].url in err and ident in err, err
        assert f"revoked {ident}" not in out
        await wait_refused(server.url, token)

        restart(ring[1])
        await wait_nodes_up(server.url)
        assert ident not in await listed(urls)
        observed_until = time.monotonic() + 7  # longer than any cache: the returning node changes nothing
        while time.monotonic() < observed_until:
            assert await status_with(server.url, token) == 401
            await asyncio.sleep(0.25)
    with serve(["--redis", urls], tmp_path, "fresh") as fresh:  # a process with nothing cached
        assert await status_with(fresh.url, token) == 401

    # The node that missed the revoke, alone: it has learned it.
    ring[0].stop()
    ring[2].stop()
    assert ident not in await listed(urls)
    with serve(["--redis", urls], tmp_path, "alone") as alone:
        assert await status_with(alone.url, token) == 401
    for engine in (ring[0], ring[2]):
        restart(engine)
    code, out, err = await cli("token", "revoke", ident, "--redis", urls)
    assert code != 0 and f"no token {ident}" in err, (out, err)  # complete everywhere: nothing left to revoke


async def test_a_ring_revoke_reaching_every_node_succeeds(ring: list[EmbeddedEngine], tmp_path: Path) -> None:
    """Issue 13, item 5: the partial revoke, run again once the node is back, reaches every node and exits 0."""
    urls = urls_of(ring)
    token = await create_token_async(urls, "jobs", "read")
    ident = token_id(token)
    ring[2].stop()
    code, _, err = await cli("token", "revoke", ident, "--redis", urls)
    assert code != 0 and "unreachable" in err, err
    restart(ring[2])
    code, out, err = await cli("token", "revoke", ident, "--redis", urls)
    assert code == 0 and f"revoked {ident}" in out, err
    with serve(["--redis", urls], tmp_path) as server:
        assert await status_with(server.url, token) == 401
    assert ident not in await listed(urls)


async def test_a_ring_create_with_a_node_down_fails_and_leaves_no_token(ring: list[EmbeddedEngine]) -> None:
    """Issue 13, item 5: a token that would be missing on one node is not created: non-zero exit, no token
    printed, and nothing stored or listed once the node returns."""
    urls = urls_of(ring)
    ring[0].stop()
    code, out, err = await cli("token", "create", "--redis", urls, "--queues", "jobs", "--rights", "read")
    assert code != 0, (out, err)
    assert "rmq_" not in out and "unreachable" in err and ring[0].url in err, (out, err)
    restart(ring[0])
    assert "jobs" not in await listed(urls)
    for engine in ring:
        client = engine_client(engine)
        try:
            assert client.hlen(keys.TOKENS) == 0, engine.url  # rolled back where it was written
        finally:
            client.close()


@pytest.fixture(params=TOPOLOGIES)
async def token_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The Store on flushed backends: one node, a ring of 3 nodes, a Redis Cluster."""
    if request.param == "node":
        engine: EmbeddedEngine = request.getfixturevalue("engine")
        flush_engines([engine])
        store = open_store([engine.url])
    elif request.param == "ring":
        nodes: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(nodes)
        store = open_store([e.url for e in nodes])
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        flush_cluster(cluster)
        store = open_store([], cluster.url)
    try:
        yield store
    finally:
        await store.close()


async def test_a_revoked_token_stays_revoked_on_every_backend_mode(token_store: Store) -> None:
    """Issue 13, item 5: the revocation mark outlives the record, so a record written again (as a ring node
    that missed the revoke still holds it) never makes the token valid or listed again."""
    _, record = new_token(("jobs",), ("read",))
    raw = record.to_json()
    await token_store.save_token(record.id, raw)
    assert await token_store.load_token(record.id) == raw
    assert await token_store.load_tokens([record.id, "0123456789ab"]) == {record.id: raw}
    assert await token_store.list_tokens() == {record.id: raw}

    assert await token_store.delete_token(record.id) is True
    assert await token_store.load_token(record.id) is None
    await token_store.save_token(record.id, raw)
    assert await token_store.load_token(record.id) is None
    assert await token_store.load_tokens([record.id]) == {}
    assert await token_store.list_tokens() == {}
    assert await token_store.delete_token(record.id) is True  # the stray record goes again
    assert await token_store.delete_token(record.id) is False


# -- rights match effects: redrive writes into the parent queue ----------------------------------------


async def test_redrive_needs_write_rights_on_the_queue_it_fills(redis_url: str, tmp_path: Path) -> None:
    """Issue 13: a token with admin on `*:dead` only cannot inject into `jobs` by adding to `jobs:dead` and
    redriving it; a token with rights on both can."""
    dead_admin = await create_token_async(redis_url, "*:dead", "admin")
    both = await create_token_async(redis_url, "jobs,jobs:dead", "admin")
    reader = await create_token_async(redis_url, "jobs", "read")
    with serve(["--redis", redis_url], tmp_path) as server:
        await add_as(server.url, dead_admin, "jobs:dead", "injected")  # its own queue: allowed
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            refused = await client.post("/q/jobs:dead/redrive", headers=bearer(dead_admin))
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "FORBIDDEN" and "jobs" in refused.json()["error"]
            assert (await client.get("/q/jobs", headers=bearer(reader))).status_code == 204
            stats = await client.get("/stats/jobs:dead", headers=bearer(dead_admin))
            assert stats.json()["length"] == 1  # nothing moved

            moved = await client.post("/q/jobs:dead/redrive", headers=bearer(both))
            assert moved.status_code == 200, moved.text
            assert moved.json() == {"queue": "jobs:dead", "target": "jobs", "moved": 1}
            got = await client.get("/q/jobs", headers=bearer(reader))
            assert got.status_code == 200 and got.json()["value"] == "injected"
