"""Plain batch adds in MULTI/EXEC (storage/plain_add.py) against add.lua: the same stored layout, a retry after a
dropped reply that adds once, the script for every add with an option, and order under concurrent adds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis

from restmq.core.model import PopMode
from restmq.errors import BackendUnavailable
from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.factory import open_store
from restmq.storage.node import RedisStore
from tests.helpers.cluster import Cluster
from tests.helpers.lossy_link import LossyLink, lossy_link
from tests.helpers.queues import drain_values
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration


def fresh_queue() -> str:
    return f"plain-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """A store with plain batches and one that sends every add to add.lua (the default)."""
    plain, scripted = RedisStore.from_url(redis_url, plain_batches=True), RedisStore.from_url(redis_url)
    try:
        yield plain, scripted
    finally:
        await plain.close()
        await scripted.close()


@pytest.fixture
async def linked(redis_url: str, engine: EmbeddedEngine) -> AsyncIterator[tuple[RedisStore, LossyLink]]:
    with lossy_link(engine.socket_path) as link:
        store = RedisStore.from_url(link.url, plain_batches=True)
        try:
            yield store, link
        finally:
            await store.close()


def stored(client: redis.Redis, queue: str) -> dict[str, object]:
    """What a queue holds, in every key an add writes (its operation records aside)."""
    qk = keys.queue_keys(queue)
    return {
        "meta": client.hgetall(qk.meta),
        "msgs": client.hgetall(qk.msgs),
        "ready": client.zrange(qk.ready, 0, -1, withscores=True),
    }


async def test_a_plain_batch_stores_what_add_lua_stores(
    stores: tuple[RedisStore, RedisStore], redis_client: redis.Redis
) -> None:
    plain, scripted = stores
    queues = fresh_queue(), fresh_queue()
    for store, queue in zip(stores, queues, strict=True):
        # batches, single adds (always the script) and takes between them: counters, numbering and scores all agree
        assert (await store.add(queue, ["a", "b", "c"])).first == 1
        await store.add(queue, ["single"])
        await store.pop(queue, PopMode.TAKE)
        added = await store.add(queue, [f"v{i}" for i in range(50)])
        assert (added.first, added.last, added.duplicate) == (5, 54, False)
    assert plain._plain_batches and not scripted._plain_batches
    assert stored(redis_client, queues[0]) == stored(redis_client, queues[1])
    assert redis_client.zscore(keys.QUEUES, queues[0]) == 0  # listed in the registry on its first add


async def test_a_plain_batch_remembers_the_reply_add_lua_replays(
    stores: tuple[RedisStore, RedisStore], redis_url: str
) -> None:
    plain, _ = stores
    queue = fresh_queue()
    await plain.add(queue, ["a", "b"])
    with redis.Redis.from_url(redis_url) as raw:  # the record is msgpack: bytes
        (ops_key,) = raw.keys(f"rmq:{{{queue}}}:ops:*")
        (record,) = raw.hvals(ops_key)
        assert msgspec.msgpack.decode(record) == [1, 2, 1, -1, 0]
        assert 0 < int(raw.pttl(ops_key)) <= 75_000


async def test_a_ring_node_numbers_a_plain_batch_from_its_base(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, key_base=3 * 10**12, plain_batches=True)
    try:
        queue = fresh_queue()
        added = await store.add(queue, ["x", "y"])
        assert (added.first, added.last) == (3 * 10**12 + 1, 3 * 10**12 + 2)
        assert (await store.add(queue, ["z"])).first == 3 * 10**12 + 3  # the script goes on from there
    finally:
        await store.close()


@pytest.mark.parametrize("lost", ["write", "reserve"])
async def test_a_plain_batch_whose_reply_was_lost_is_added_once(
    linked: tuple[RedisStore, LossyLink], redis_client: redis.Redis, lost: str
) -> None:
    """The write's reply lost: the retry (add.lua, same operation id) replays its record. The reservation's reply
    lost: nothing was written, the retry adds the batch once (a gap in the numbering is all that is left)."""
    store, link = linked
    queue = fresh_queue()
    await store.add(queue, ["before"])
    values = [f"{lost}-{i}" for i in range(20)]
    reserving = b"$5\r\norder\r\n$2\r\n20\r\n"  # HINCRBY meta order 20
    link.lose_next_reply_to(reserving if lost == "reserve" else values[0].encode())
    added = await store.add(queue, values)
    assert link.lost == 1
    # replayed: the numbers the transaction wrote; added again by the script: after the lost reservation's
    assert (added.first, added.last) == ((2, 21) if lost == "write" else (22, 41))
    taken = (await store.pop(queue, PopMode.TAKE, count=100)).messages
    assert [m.value for m in taken] == ["before", *values]
    assert [m.n for m in taken[1:]] == list(range(added.first, added.last + 1))
    assert redis_client.hget(keys.queue_keys(queue).meta, "added") == "21"


@pytest.mark.parametrize(
    "options",
    [{"priority": 3}, {"delay_ms": 60_000}, {"ttl_ms": 60_000}, {"idempotency_key": "k"}],
    ids=["priority", "delay", "ttl", "idempotency"],
)
async def test_a_batch_with_an_option_takes_the_script(
    stores: tuple[RedisStore, RedisStore], redis_client: redis.Redis, options: dict[str, object]
) -> None:
    plain, scripted = stores
    queues = fresh_queue(), fresh_queue()
    for store, queue in zip(stores, queues, strict=True):
        await store.add(queue, ["a", "b"], **options)  # type: ignore[arg-type]
        await store.add(queue, ["c", "d"], **options)  # type: ignore[arg-type]
    assert stored(redis_client, queues[0]) == stored(redis_client, queues[1])
    if "idempotency_key" in options:
        assert redis_client.hlen(keys.queue_keys(queues[0]).msgs) == 2  # the second was a duplicate


async def test_concurrent_batches_each_keep_their_order_and_none_is_lost(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    """Plain batches, script batches and single adds at once, with takes running: every message is delivered once,
    and each batch's messages in their order (across concurrent adds, the order of their reservations)."""
    plain, scripted = stores
    queue = fresh_queue()
    batches = [[f"b{b}-{i}" for i in range(25)] for b in range(24)]
    taken: list[str] = []
    adding = True

    async def take() -> None:
        while adding or len(taken) < 24 * 25:
            got = (await plain.pop(queue, PopMode.TAKE, count=7)).messages
            taken.extend(m.value for m in got)
            if not got:
                await asyncio.sleep(0.001)  # nothing yet: let the adders run

    async def add(b: int) -> None:
        store = plain if b % 3 else scripted
        if b % 6 == 5:
            for value in batches[b]:
                await store.add(queue, [value])
        else:
            await store.add(queue, batches[b])

    taker = asyncio.ensure_future(take())  # one taker: the order it appends is the order of delivery
    await asyncio.gather(*(add(b) for b in range(24)))
    adding = False
    await asyncio.wait_for(taker, 60)
    assert sorted(taken) == sorted(v for batch in batches for v in batch)
    for batch in batches:
        positions = [taken.index(v) for v in batch]
        assert positions == sorted(positions), "a batch's messages left their order"


async def test_a_cluster_store_takes_the_script(shared_cluster: Cluster) -> None:
    """A cluster client resends a call by itself: a transaction would be written twice (plain_add.py)."""
    store = open_store([], shared_cluster.url, plain_batches=True)
    try:
        assert isinstance(store, RedisStore) and not store._plain_batches
        queue = fresh_queue()
        added = await store.add(queue, ["a", "b", "c"])
        assert (added.first, added.last) == (1, 3)
        assert [m.value for m in (await store.pop(queue, PopMode.TAKE, count=5)).messages] == ["a", "b", "c"]
    finally:
        await store.close()


@pytest.mark.parametrize("topology", ["node", "ring"])
async def test_plain_batches_over_http(topology: str, request: pytest.FixtureRequest) -> None:
    """`plain_batches` (restmq serve --plain-batches) on one node and on a ring: batches in order, options kept."""
    if topology == "node":
        where: dict[str, Any] = {"redis_url": request.getfixturevalue("redis_url")}
    else:
        where = {"redis_urls": [e.url for e in request.getfixturevalue("ring_engines")]}
    async with run_app(plain_batches=True, **where) as url, httpx.AsyncClient(base_url=url) as http:
        queue = fresh_queue()
        reply = await http.post(f"/q/{queue}", json=["a", "b", "c"])
        assert reply.status_code == 200
        first = int(reply.json()["keys"][0].rsplit(":", 1)[1])
        assert reply.json() == {"keys": [f"{queue}:{n}" for n in range(first, first + 3)]}
        assert (await http.post(f"/q/{queue}", params={"priority": 5}, json=["urgent", "too"])).status_code == 200
        assert await drain_values(http, queue) == ["urgent", "too", "a", "b", "c"]


async def test_a_refused_plain_batch_writes_nothing_and_leaves_the_connection_usable(
    stores: tuple[RedisStore, RedisStore], redis_client: redis.Redis
) -> None:
    """maxmemory reached: the engine refuses the transaction's commands (EXECABORT), the add is a 503-kind error, and
    the store's connections stay in step for the next calls."""
    plain, _ = stores
    queue = fresh_queue()
    await plain.add(queue, ["kept", "too"])
    redis_client.config_set("maxmemory", 1)
    try:
        for _ in range(3):
            with pytest.raises(BackendUnavailable, match="OOM"):
                await plain.add(queue, ["refused", "also"])
    finally:
        redis_client.config_set("maxmemory", 0)
    assert (await plain.add(queue, ["after", "last"])).first == 3  # a refused reservation takes no numbers
    assert [m.value for m in (await plain.pop(queue, PopMode.TAKE, count=10)).messages] == [
        "kept",
        "too",
        "after",
        "last",
    ]
