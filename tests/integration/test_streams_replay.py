"""Streams.replay: the broadcast history after a Last-Event-ID, on the real store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest
import redis

from restmq.core.dispatch import StreamConfig, Streams
from restmq.core.model import StreamStatus
from restmq.core.waiters import Waiters
from restmq.storage import keys
from restmq.storage.node import RedisStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def streams(store: RedisStore) -> AsyncIterator[Streams]:
    waiters = Waiters(store)
    yield Streams(store, waiters, StreamConfig(history=5))
    waiters.close()


async def broadcast(store: RedisStore, queue: str, values: list[str], history: int = 5) -> None:
    await store.add(queue, values)
    result = await store.broadcast(queue, 100, history)
    assert (result.status, result.count) == (StreamStatus.OK, len(values))


async def test_replay_returns_what_came_after_the_id_oldest_first(store: RedisStore, streams: Streams) -> None:
    await broadcast(store, "h", ["a", "b", "c", "d"])
    entries, reached = await streams.replay("h", "h:2")
    assert reached
    assert [(e.key, e.value, e.count) for e in entries] == [("h:3", "c", 1), ("h:4", "d", 1)]


async def test_replay_from_the_newest_id_is_empty_and_complete(store: RedisStore, streams: Streams) -> None:
    await broadcast(store, "h", ["a", "b"])
    assert await streams.replay("h", "h:2") == ([], True)


async def test_replay_of_an_unknown_id_is_everything_retained_and_incomplete(
    store: RedisStore, streams: Streams
) -> None:
    await broadcast(store, "h", ["a", "b", "c"])
    for unknown in ("h:99", "other:1", "", "h:0"):
        entries, reached = await streams.replay("h", unknown)
        assert not reached
        assert [e.key for e in entries] == ["h:1", "h:2", "h:3"]


async def test_replay_of_an_id_trimmed_from_the_history_is_incomplete(store: RedisStore, streams: Streams) -> None:
    await broadcast(store, "h", [str(i) for i in range(1, 9)])  # history keeps the newest 5
    entries, reached = await streams.replay("h", "h:2")
    assert not reached
    assert [e.key for e in entries] == ["h:4", "h:5", "h:6", "h:7", "h:8"]
    entries, reached = await streams.replay("h", "h:4")
    assert reached
    assert [e.key for e in entries] == ["h:5", "h:6", "h:7", "h:8"]


async def test_replay_spans_several_broadcasts_in_order(store: RedisStore, streams: Streams) -> None:
    await broadcast(store, "h", ["a"])
    await broadcast(store, "h", ["b", "c"])
    await broadcast(store, "h", ["d"])
    entries, reached = await streams.replay("h", "h:1")
    assert reached and [e.value for e in entries] == ["b", "c", "d"]


async def test_replay_of_an_empty_history(streams: Streams) -> None:
    assert await streams.replay("never", "never:1") == ([], False)


async def test_replay_ignores_entries_older_than_history_age(
    store: RedisStore, streams: Streams, redis_client: redis.Redis
) -> None:
    now = int(time.time() * 1000)
    old = now - int(streams.config.history_age * 1000) - 60_000
    history = keys.queue_keys("aged").history
    for n, at in [(1, old), (2, old), (3, now), (4, now)]:  # LPUSH: newest ends up first
        redis_client.lpush(history, orjson.dumps({"key": f"aged:{n}", "value": str(n), "count": 1, "t": at}))
    entries, reached = await streams.replay("aged", "aged:1")
    assert not reached
    assert [e.key for e in entries] == ["aged:3", "aged:4"]
    entries, reached = await streams.replay("aged", "aged:3")
    assert reached and [e.key for e in entries] == ["aged:4"]


async def test_replay_from_the_newest_entry_reaches_it_however_old(
    store: RedisStore, streams: Streams, redis_client: redis.Redis
) -> None:
    """Issue 14: a quiet queue's last broadcast is older than history_age, yet nothing came after it."""
    old = int(time.time() * 1000) - int(streams.config.history_age * 1000) - 60_000
    history = keys.queue_keys("quiet").history
    for n in (1, 2):
        redis_client.lpush(history, orjson.dumps({"key": f"quiet:{n}", "value": str(n), "count": 1, "t": old}))
    assert await streams.replay("quiet", "quiet:2") == ([], True)
    assert await streams.replay("quiet", "quiet:1") == ([], False)  # quiet:2 aged out after it


async def test_replay_on_a_roundrobin_queue_of_an_id_not_in_the_history_is_empty_and_complete(
    store: RedisStore, streams: Streams
) -> None:
    """Issue 14: roundrobin deliveries are never in the history, and never replayed."""
    await broadcast(store, "rr", ["a", "b"])  # history from before the switch
    await store.update_settings("rr", policy="roundrobin")
    assert await streams.replay("rr", "rr:7") == ([], True)
    entries, reached = await streams.replay("rr", "rr:1")  # a broadcast delivery: what came after it
    assert reached and [e.key for e in entries] == ["rr:2"]


async def test_replay_within_a_byte_limit_keeps_the_newest_and_is_incomplete(
    store: RedisStore, streams: Streams
) -> None:
    """Issue 13: the backend read stops before the entry that would pass max_bytes (as stored)."""
    await broadcast(store, "h", ["a" * 100, "b" * 100, "c" * 100, "d" * 100])
    full = await store.history("h", 5)
    size = full.entries[0].size
    assert size > 100 and all(e.size == size for e in full.entries)
    entries, reached = await streams.replay("h", "h:1", max_bytes=2 * size)
    assert not reached
    assert [e.key for e in entries] == ["h:3", "h:4"]
    entries, reached = await streams.replay("h", "h:2", max_bytes=2 * size)
    assert reached and [e.key for e in entries] == ["h:3", "h:4"]
    assert await streams.replay("h", "h:4", max_bytes=0) == ([], True)  # nothing missed: nothing to send
    assert await streams.replay("h", "h:3", max_bytes=0) == ([], False)


async def test_recent_within_a_byte_limit_keeps_the_newest_and_says_so(store: RedisStore) -> None:
    """Issue 13: /peek's backend read stops before the value that would pass max_bytes."""
    await store.add("p", ["a" * 10, "b" * 10, "c" * 10])
    recent = await store.recent("p", 500, 25)
    assert [m.value for m in recent.messages] == ["c" * 10, "b" * 10] and recent.truncated
    recent = await store.recent("p", 2, 25)
    assert len(recent.messages) == 2 and not recent.truncated
    recent = await store.recent("p", 500)
    assert len(recent.messages) == 3 and not recent.truncated
