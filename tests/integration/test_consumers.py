"""Competing consumers: every message is delivered exactly once (SPEC section 2)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.helpers.queues import length
from tests.helpers.server import run_app

pytestmark = pytest.mark.integration

TOTAL, BATCH, CONSUMERS = 2_000, 100, 16


async def produce(url: str, queue: str, done: asyncio.Event) -> list[str]:
    keys: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for start in range(0, TOTAL, BATCH):
            response = await client.post(f"/q/{queue}", json=[f"m{i}" for i in range(start, start + BATCH)])
            keys += response.json()["keys"]
    done.set()
    return keys


async def consume(url: str, queue: str, done: asyncio.Event, params: dict[str, str]) -> list[str]:
    """GET in a loop until production is over and the queue answers 204."""
    keys: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while True:
            finished = done.is_set()
            response = await client.get(f"/q/{queue}", params=params)
            if response.status_code == 204:
                if finished:
                    return keys
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            keys += [m["key"] for m in body] if isinstance(body, list) else [body["key"]]


async def run(
    urls: list[str], queue: str, params: dict[str, str], *, concurrent: bool
) -> tuple[list[str], list[list[str]]]:
    """Add TOTAL messages in batches (before, or while, CONSUMERS tasks read them); returns added and delivered keys."""
    done = asyncio.Event()
    added = [] if concurrent else await produce(urls[0], queue, done)
    consumers = [asyncio.create_task(consume(urls[i % len(urls)], queue, done, params)) for i in range(CONSUMERS)]
    if concurrent:
        added = await produce(urls[0], queue, done)
    return added, await asyncio.gather(*consumers)


def assert_exactly_once(added: list[str], delivered: list[list[str]]) -> None:
    every = [key for keys in delivered for key in keys]
    duplicates = [key for key, n in Counter(every).items() if n > 1]
    assert not duplicates, f"delivered more than once: {duplicates[:10]}"
    assert Counter(every) == Counter(added)
    assert len(added) == TOTAL


async def test_16_consumers_get_each_message_exactly_once(server: str, http: httpx.AsyncClient) -> None:
    added, delivered = await run([server], "work", {}, concurrent=False)
    assert_exactly_once(added, delivered)
    assert sum(1 for keys in delivered if keys) > 1  # the work was actually shared
    for keys in delivered:  # each consumer saw its share in FIFO order
        numbers = [int(key.rsplit(":", 1)[1]) for key in keys]
        assert numbers == sorted(numbers)
    assert await length(http, "work") == 0
    assert (await http.get("/stats/work")).json()["delivered"] == TOTAL


async def test_consumers_racing_the_producer_get_each_message_exactly_once(server: str) -> None:
    added, delivered = await run([server], "racing", {"wait": "0.5"}, concurrent=True)
    assert_exactly_once(added, delivered)


async def test_batched_reads_deliver_exactly_once(server: str) -> None:
    added, delivered = await run([server], "batched", {"count": "7", "wait": "0.5"}, concurrent=True)
    assert_exactly_once(added, delivered)


async def test_consumers_on_two_servers_deliver_exactly_once(redis_url: str) -> None:
    async with run_app(redis_url) as first, run_app(redis_url) as second:
        added, delivered = await run([first, second], "shared", {"wait": "0.5"}, concurrent=True)
    assert_exactly_once(added, delivered)
