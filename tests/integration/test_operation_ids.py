"""Operation ids (issue 14, item 3): a state-changing call whose reply was lost after its script ran is
retried once on a fresh connection, and the retry replays the first reply instead of applying twice.

The store reaches the engine through a link that drops the connection carrying one chosen reply.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from restmq.core.model import PopMode, SettleAction, SettleOutcome
from restmq.storage import node
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.node import RedisStore
from tests.helpers.lossy_link import LossyLink, lossy_link

pytestmark = pytest.mark.integration


@pytest.fixture
async def linked(redis_url: str, engine: EmbeddedEngine) -> AsyncIterator[tuple[RedisStore, LossyLink]]:
    with lossy_link(engine.socket_path) as link:
        store = RedisStore.from_url(link.url)
        try:
            yield store, link
        finally:
            await store.close()


def fresh_queue() -> str:
    return f"ops-{uuid.uuid4().hex[:10]}"


async def ready_count(store: RedisStore, queue: str) -> int:
    return (await store.stats([queue]))[0].length


async def test_a_repeated_delete_reports_the_message_it_deleted(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    added = await store.add(queue, ["gone"])
    link.lose_next_reply_to(queue.encode())
    assert await store.delete(queue, added.first) is True
    assert link.lost == 1
    assert await ready_count(store, queue) == 0


async def test_a_repeated_purge_removes_once_and_reports_it(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, ["a", "b", "c"])
    link.lose_next_reply_to(queue.encode())
    assert await store.purge(queue) == 3
    assert link.lost == 1


async def test_a_repeated_redrive_moves_its_limit_once(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(f"{queue}:dead", ["first", "second"])
    link.lose_next_reply_to(queue.encode())
    assert await store.redrive(f"{queue}:dead", limit=1) == 1
    assert link.lost == 1
    assert await ready_count(store, queue) == 1  # not two: the retry did not redrive again
    assert await ready_count(store, f"{queue}:dead") == 1


async def test_a_repeated_soft_get_counts_one_delivery(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, ["head"])
    link.lose_next_reply_to(queue.encode())
    assert [m.count for m in (await store.pop(queue, PopMode.PEEK)).messages] == [1]
    assert link.lost == 1
    assert [m.count for m in (await store.pop(queue, PopMode.PEEK)).messages] == [2]


async def test_repeated_releases_of_a_batch_all_report_ok(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, ["one", "two"])
    leased = (await store.pop(queue, PopMode.LEASE, count=2, lease_ms=300_000)).messages
    link.lose_next_reply_to(queue.encode())
    results = await store.settle_many(queue, SettleAction.RELEASE, [(m.n, m.count) for m in leased])
    assert link.lost == 1
    assert [r.outcome for r in results] == [SettleOutcome.OK, SettleOutcome.OK]
    assert await ready_count(store, queue) == 2


async def test_a_repeated_lease_of_several_returns_the_same_messages(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, [f"m{i}" for i in range(5)])
    link.lose_next_reply_to(queue.encode())
    leased = (await store.pop(queue, PopMode.LEASE, count=3, lease_ms=300_000)).messages
    assert link.lost == 1
    assert [(m.value, m.count) for m in leased] == [("m0", 1), ("m1", 1), ("m2", 1)]
    stats = (await store.stats([queue]))[0]
    assert (stats.length, stats.leased) == (2, 3)


async def test_changes_are_remembered_and_empty_polls_are_not(
    linked: tuple[RedisStore, LossyLink], redis_client: redis.Redis
) -> None:
    store, _ = linked
    queue = fresh_queue()
    assert (await store.pop(queue, PopMode.TAKE)).messages == []  # polls of empty queues stay one script, no write
    assert redis_client.keys(f"rmq:{{{queue}}}:op*") == []
    await store.add(queue, ["x"])
    remembered = [str(key) for key in redis_client.keys(f"rmq:{{{queue}}}:op*")]
    assert len(remembered) == 1 and remembered[0].startswith(f"rmq:{{{queue}}}:ops:")
    assert redis_client.hlen(remembered[0]) == 1
    assert 0 < int(redis_client.pttl(remembered[0])) <= 75_000


async def test_a_repeated_ack_lease_acks_once_and_leases_the_same(linked: tuple[RedisStore, LossyLink]) -> None:
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, ["done", "next"])
    held = (await store.pop(queue, PopMode.LEASE, lease_ms=300_000)).messages[0]
    link.lose_next_reply_to(queue.encode())
    result = await store.ack_lease(queue, [(held.n, held.count)], 1, 300_000)
    assert link.lost == 1
    assert [r.outcome for r in result.acked] == [SettleOutcome.OK]  # the retry replayed: not MISSING
    assert [(m.value, m.count) for m in result.messages] == [("next", 1)]
    stats = (await store.stats([queue]))[0]
    assert (stats.length, stats.leased, stats.counters["acked"]) == (0, 1, 1)


class Clock:
    """time.time for restmq.storage.node, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


async def test_a_retry_after_its_window_ended_replays_from_the_window_it_began_in(
    linked: tuple[RedisStore, LossyLink], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, link = linked
    clock = Clock()
    monkeypatch.setattr(node, "time", clock)
    reconnect = store._drop_idle_connections

    async def late_retry() -> None:  # the call's window ends before its retry is sent
        clock.now += node.OP_WINDOW_S
        await reconnect()

    monkeypatch.setattr(store, "_drop_idle_connections", late_retry)
    queue = fresh_queue()
    first_window = f"rmq:{{{queue}}}:ops:{int(clock.now) // node.OP_WINDOW_S}"
    await store.add(queue, ["a"])
    link.lose_next_reply_to(b"retried-across")
    added = await store.add(queue, ["retried-across"])
    assert link.lost == 1
    assert (added.first, added.last) == (2, 2)
    assert await ready_count(store, queue) == 2
    assert redis_client.hlen(first_window) == 2  # both calls: the retry looked where the call had remembered
    assert redis_client.keys(f"rmq:{{{queue}}}:ops:*") == [first_window]
    await store.add(queue, ["after"])  # a new call: the window of now
    assert redis_client.exists(f"rmq:{{{queue}}}:ops:{int(clock.now) // node.OP_WINDOW_S}") == 1


async def test_records_of_the_previous_version_are_left_to_expire(
    linked: tuple[RedisStore, LossyLink], redis_client: redis.Redis
) -> None:
    """Before the window hashes, each call remembered its reply in its own key, `op:<id>` (PX 30 s). A retry is sent
    by the process that sent the call, with its own code: such a key is read only by the version that wrote it, and
    an upgraded process neither reads nor removes it."""
    store, link = linked
    queue = fresh_queue()
    legacy = f"rmq:{{{queue}}}:op:0123456789abcdef0"
    redis_client.set(legacy, "a reply of the previous version", px=30_000)
    link.lose_next_reply_to(queue.encode())
    assert (await store.add(queue, ["a"])).first == 1
    assert link.lost == 1
    assert await ready_count(store, queue) == 1
    assert redis_client.get(legacy) == "a reply of the previous version" and 0 < redis_client.pttl(legacy) <= 30_000
