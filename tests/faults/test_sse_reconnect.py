"""SSE reconnects with Last-Event-ID against a real `restmq serve`: an `event: gap` comes only when
broadcast history the client asked for is really missing (issue 14, item 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from restmq.storage import keys
from tests.helpers.queues import add
from tests.helpers.server import ServeProcess, serve
from tests.helpers.streams import SSEReader, comet, sse, wait_consumers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HISTORY = 1000  # StreamConfig.history: broadcast deliveries kept per queue
HISTORY_AGE = 300.0  # StreamConfig.history_age: seconds they are kept


@pytest.fixture
def restmq(redis_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with serve(["--redis", redis_url], tmp_path) as process:
        yield process


@pytest.fixture
async def http(restmq: ServeProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=restmq.url, timeout=30) as client:
        yield client


def gaps(reader: SSEReader) -> list[dict[str, object]]:
    return [orjson.loads(e.data or "{}") for e in reader.events if e.event == "gap"]


async def test_roundrobin_reconnect_with_last_event_id_gets_no_gap(
    restmq: ServeProcess, http: httpx.AsyncClient
) -> None:
    """A roundrobin delivery is never in the broadcast history: resuming after one misses nothing
    (an unwritten message went back to the queue), so no gap and no broadcast replay."""
    assert (await http.post("/p/rr", data={"policy": "roundrobin"})).status_code == 200
    async with sse(restmq.url, "rr") as first:
        await wait_consumers(http, restmq.url, "rr", 1)
        await add(http, "rr", "one", base=restmq.url)
        await first.wait_count(1)
    last = first.keys[-1]
    async with sse(restmq.url, "rr", last_event_id=last) as again:
        await wait_consumers(http, restmq.url, "rr", 1)
        await add(http, "rr", "two", base=restmq.url)
        await again.wait_count(1)
    assert gaps(again) == []
    assert again.keys == ["rr:2"]


async def test_roundrobin_reconnect_after_a_policy_switch_replays_no_stale_broadcasts(
    restmq: ServeProcess, http: httpx.AsyncClient
) -> None:
    """Broadcast history left from before a switch to roundrobin is not replayed to a roundrobin
    consumer whose last event was a roundrobin delivery."""
    async with sse(restmq.url, "sw") as reader:
        await wait_consumers(http, restmq.url, "sw", 1)
        await add(http, "sw", "broadcast", base=restmq.url)
        await reader.wait_count(1)
    assert (await http.post("/p/sw", data={"policy": "roundrobin"})).status_code == 200
    async with sse(restmq.url, "sw") as reader:
        await wait_consumers(http, restmq.url, "sw", 1)
        await add(http, "sw", "roundrobin", base=restmq.url)
        await reader.wait_count(1)
    async with sse(restmq.url, "sw", last_event_id="sw:2") as again:
        await wait_consumers(http, restmq.url, "sw", 1)
        await add(http, "sw", "live", base=restmq.url)
        await again.wait_count(1)
    assert gaps(again) == [] and again.keys == ["sw:3"]


async def test_broadcast_reconnect_within_the_retained_history_gets_no_gap(
    restmq: ServeProcess, http: httpx.AsyncClient
) -> None:
    async with comet(restmq.url, "b") as other:
        await wait_consumers(http, restmq.url, "b", 1)
        for i in range(1, 6):
            await add(http, "b", f"m{i}", base=restmq.url)
        await other.wait_count(5)
    async with sse(restmq.url, "b", last_event_id="b:3") as again:
        await again.wait_count(2)
    assert gaps(again) == []
    assert again.keys == ["b:4", "b:5"]


async def test_broadcast_reconnect_older_than_the_retained_history_gets_exactly_one_gap(
    restmq: ServeProcess, http: httpx.AsyncClient
) -> None:
    async with comet(restmq.url, "old") as other:
        await wait_consumers(http, restmq.url, "old", 1)
        added = await http.post("/q/old", json=[f"v{i}" for i in range(1, HISTORY + 6)])
        assert added.status_code == 200, added.text
        await other.wait_count(HISTORY + 5, timeout=60)
    async with sse(restmq.url, "old", last_event_id="old:2") as again:
        await again.wait_count(HISTORY)
        await add(http, "old", "live", base=restmq.url)
        await again.wait_count(HISTORY + 1)
    assert gaps(again) == [{"last_event_id": "old:2", "oldest": "old:6"}]
    assert [e.event for e in again.events].count("gap") == 1
    assert again.keys == [f"old:{i}" for i in range(6, HISTORY + 7)]


async def test_broadcast_reconnect_on_a_quiet_queue_gets_no_gap(
    restmq: ServeProcess, http: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    """The client's last event is still the newest broadcast, but older than the history's age:
    nothing was broadcast since, so nothing is missing."""
    async with comet(restmq.url, "quiet") as other:
        await wait_consumers(http, restmq.url, "quiet", 1)
        for i in range(1, 4):
            await add(http, "quiet", f"m{i}", base=restmq.url)
        await other.wait_count(3)
    age_history(redis_client, "quiet", HISTORY_AGE + 60)  # as if the queue had been quiet since
    async with sse(restmq.url, "quiet", last_event_id="quiet:3") as again:
        await wait_consumers(http, restmq.url, "quiet", 1)
        await add(http, "quiet", "live", base=restmq.url)
        await again.wait_count(1)
    assert gaps(again) == [] and again.keys == ["quiet:4"]
    # one step further back, a delivery aged out of the history is really missing
    async with sse(restmq.url, "quiet", last_event_id="quiet:2") as again:
        await again.wait_count(1)
    assert gaps(again) == [{"last_event_id": "quiet:2", "oldest": "quiet:4"}]
    assert again.keys == ["quiet:4"]


def age_history(client: redis.Redis, queue: str, seconds: float) -> None:
    """Move every entry of the queue's broadcast history `seconds` into the past."""
    history = keys.queue_keys(queue).history
    for index, raw in enumerate(client.lrange(history, 0, -1)):
        entry = orjson.loads(raw)
        entry["t"] -= int(seconds * 1000)
        client.lset(history, index, orjson.dumps(entry).decode())
