"""Stale pooled connections after the engine comes back, and replies lost after a script ran (issue 14, item 3).

A real `restmq serve` on an engine this test starts itself: killed with -9 and restarted on its AOF, or
reached through a link that loses one reply. Once /ready answers 200 again no request may fail, and a
call whose connection broke after its script ran is retried without applying twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from restmq.storage.engine import EmbeddedEngine
from tests.helpers.engine_faults import kill_and_restart
from tests.helpers.lossy_link import LossyLink, lossy_link
from tests.helpers.queues import add, stats
from tests.helpers.server import ServeProcess, serve
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

QUEUES = [f"stale-{i}" for i in range(8)]


@pytest.fixture
def server_behind_link(own_engine: EmbeddedEngine, tmp_path: Path) -> Iterator[tuple[ServeProcess, LossyLink]]:
    with lossy_link(own_engine.socket_path) as link, serve(["--redis", link.url], tmp_path) as server:
        yield server, link


async def mixed_burst(http: httpx.AsyncClient, round_: int) -> list[int]:
    """Many requests at once, so that the server holds many pooled connections: adds, leases, acks,
    statistics and settings reads. The status of each."""

    async def lease_and_ack(queue: str) -> list[int]:
        got = await http.get(f"/q/{queue}", params={"lease": 30})
        if got.status_code != 200:
            return [got.status_code]
        acked = await http.delete(f"/q/{queue}/{got.json()['key']}")
        return [got.status_code, acked.status_code]

    async def one(i: int) -> list[int]:
        queue = QUEUES[i % len(QUEUES)]
        kind = i % 5
        if kind in (0, 1):
            return [(await http.post(f"/q/{queue}", data={"value": f"r{round_}-{i}"})).status_code]
        if kind == 2:
            return await lease_and_ack(queue)
        if kind == 3:
            return [(await http.get(f"/stats/{queue}")).status_code]
        return [(await http.get(f"/p/{queue}")).status_code]

    results = await asyncio.gather(*(one(i) for i in range(80)))
    return [status for statuses in results for status in statuses]


async def no_failures_after_restarts(server: ServeProcess, engine: EmbeddedEngine) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for round_ in range(3):  # the server's pool grows to many connections
            assert set(await mixed_burst(http, round_)) <= {200, 204}
        for _ in range(3):  # each restart leaves every pooled connection stale
            kill_and_restart(engine)
            wait_until(server.answers, 30, 0.05, "/ready to answer 200 after the engine restart")
            statuses = []
            for round_ in range(3):
                statuses += await mixed_burst(http, round_)
            failed = [status for status in statuses if status not in (200, 204)]
            assert failed == [], f"{len(failed)} of {len(statuses)} requests failed after /ready said 200"


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
async def test_no_request_fails_on_a_stale_connection_once_ready_again(
    own_engine: EmbeddedEngine, tmp_path: Path, http_server: str
) -> None:
    """The engine's unix socket: a killed engine closes its connections (the pool sees them closed)."""
    with serve(["--redis", own_engine.url, "--server", http_server], tmp_path) as server:
        await no_failures_after_restarts(server, own_engine)


async def test_no_request_fails_on_a_half_open_connection_once_ready_again(
    own_engine: EmbeddedEngine, tmp_path: Path
) -> None:
    """Over TCP, a dead peer may leave connections open and silent: only the next command finds out."""
    with lossy_link(own_engine.socket_path, half_open=True) as link, serve(["--redis", link.url], tmp_path) as server:
        await no_failures_after_restarts(server, own_engine)


async def test_a_lease_whose_reply_was_lost_is_retried_and_returns_the_leased_message(
    server_behind_link: tuple[ServeProcess, LossyLink],
) -> None:
    server, link = server_behind_link
    queue = f"lost-lease-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        key = await add(http, queue, "leased once")
        await add(http, queue, "still queued")
        link.lose_next_reply_to(queue.encode())
        leased = await http.get(f"/q/{queue}", params={"lease": 300})
        assert link.lost == 1, "the link did not drop the lease's reply"
        assert leased.status_code == 200, leased.text
        assert leased.json()["key"] == key
        assert leased.json()["count"] == 1  # delivered once: the retry replayed the lease, it did not lease again
        after = await stats(http, queue)
        assert (after["length"], after["leased"]) == (1, 1)
        assert (await http.delete(f"/q/{queue}/{key}")).status_code == 200  # the lease the client holds is valid


async def test_a_take_whose_reply_was_lost_returns_the_message_it_took(
    server_behind_link: tuple[ServeProcess, LossyLink],
) -> None:
    server, link = server_behind_link
    queue = f"lost-take-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first = await add(http, queue, "first")
        second = await add(http, queue, "second")
        link.lose_next_reply_to(queue.encode())
        taken = await http.get(f"/q/{queue}")
        assert link.lost == 1, "the link did not drop the take's reply"
        assert taken.status_code == 200, taken.text
        assert taken.json()["key"] == first  # not lost, and the retry did not take the next one too
        assert (await http.get(f"/q/{queue}")).json()["key"] == second
        assert (await http.get(f"/q/{queue}")).status_code == 204


async def test_an_add_whose_reply_was_lost_is_stored_once(
    server_behind_link: tuple[ServeProcess, LossyLink],
) -> None:
    server, link = server_behind_link
    queue = f"lost-add-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        link.lose_next_reply_to(queue.encode())
        added = await http.post(f"/q/{queue}", data={"value": "once"})
        assert link.lost == 1, "the link did not drop the add's reply"
        assert added.status_code == 200, added.text
        assert (await stats(http, queue))["length"] == 1


async def test_an_ack_whose_reply_was_lost_answers_ok(
    server_behind_link: tuple[ServeProcess, LossyLink],
) -> None:
    server, link = server_behind_link
    queue = f"lost-ack-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await add(http, queue, "work")
        key = (await http.get(f"/q/{queue}", params={"lease": 300})).json()["key"]
        link.lose_next_reply_to(queue.encode())
        acked = await http.delete(f"/q/{queue}/{key}")
        assert link.lost == 1, "the link did not drop the ack's reply"
        assert acked.status_code == 200, acked.text  # the retry replays "acknowledged", not "no such message"
        after = await stats(http, queue)
        assert (after["length"], after["leased"]) == (0, 0)
