"""An engine that lost its scripts (an engine started without its data, a new cluster primary: FCALL answers
"Function not found") runs every script path again by itself, on one node and on a Redis Cluster (issue 14,
item 1; issue 16: the scripts are a FUNCTION library now)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from restmq.storage import keys
from restmq.storage.cluster import connect_cluster
from restmq.storage.node import connect
from restmq.storage.scripts import Client, Scripts
from tests.helpers.cluster import Cluster

pytestmark = pytest.mark.integration

CALLS = 20


@pytest.fixture(params=["node", "cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    opened: Client
    if request.param == "node":
        opened = connect(request.getfixturevalue("redis_url"))
    else:
        cluster: Cluster = request.getfixturevalue("shared_cluster")
        opened = connect_cluster(cluster.url)
    yield opened
    await opened.aclose()


def deadline_call(i: int) -> tuple[list[str], list[str]]:
    """The `deadline` script reads a queue's timers and changes nothing; a queue per call spreads them over slots."""
    return list(keys.queue_keys(f"noscript-{i}").message_keys), []


async def flush_functions(client: Client) -> None:
    reply = await client.function_flush()  # a cluster answers for each primary
    assert all(done in (True, "OK") for done in (reply.values() if isinstance(reply, dict) else [reply]))


async def loaded_then_flushed(client: Client, coalesce: bool) -> Scripts:
    scripts = Scripts(client, coalesce=coalesce)
    assert await scripts.run("deadline", *deadline_call(0)) == -1  # loaded once, as before an engine restart
    await flush_functions(client)  # what an engine started empty has: no library
    return scripts


@pytest.mark.parametrize("coalesce", [True, False])
async def test_single_and_concurrent_calls_reload_the_script(client: Client, coalesce: bool) -> None:
    scripts = await loaded_then_flushed(client, coalesce)
    assert await scripts.run("deadline", *deadline_call(1)) == -1
    await flush_functions(client)
    # Concurrent calls share one pipeline when coalescing: every one of them finds no function at once.
    replies = await asyncio.gather(*(scripts.run("deadline", *deadline_call(i)) for i in range(CALLS)))
    assert replies == [-1] * CALLS


@pytest.mark.parametrize("coalesce", [True, False])
async def test_run_many_reloads_the_script(client: Client, coalesce: bool) -> None:
    scripts = await loaded_then_flushed(client, coalesce)
    replies = await scripts.run_many("deadline", [deadline_call(i) for i in range(CALLS)])
    assert replies == [-1] * CALLS


async def test_run_pipelined_reloads_the_script(client: Client) -> None:
    scripts = await loaded_then_flushed(client, coalesce=True)
    replies = await scripts.run_pipelined("deadline", [deadline_call(i) for i in range(CALLS)])
    assert replies == [-1] * CALLS
