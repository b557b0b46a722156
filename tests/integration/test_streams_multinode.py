"""Streaming across server processes: several `restmq serve` on one valkey-server.

Broadcast and roundrobin delivery over consumers of every process, flow control and purge from
another process, presence counts, and a process killed with SIGKILL while it streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.queues import add, drain, stats
from tests.helpers.streams import Reader, open_reader, serve_nodes, wait_consumers
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def publish_alternately(client: httpx.AsyncClient, bases: list[str], queue: str, n: int) -> list[str]:
    keys = []
    for i in range(n):
        keys.append(await add(client, queue, f"value-{i}", base=bases[i % len(bases)]))
    return keys


@contextlib.asynccontextmanager
async def consumers(placement: list[tuple[str, str]], queue: str) -> Any:
    """Readers of `queue`: (transport kind, base URL) each."""
    async with contextlib.AsyncExitStack() as stack:
        readers: list[Reader] = []
        for kind, base in placement:
            readers.append(await stack.enter_async_context(open_reader(kind, base, queue)))
        yield readers


async def test_broadcast_every_consumer_on_every_node_gets_every_message_once_in_order(
    redis_url: str, tmp_path: Path
) -> None:
    with serve_nodes(redis_url, tmp_path, 2) as (a, b):
        placement = [("sse", a.url), ("comet", a.url), ("ws", b.url), ("sse-c", b.url)]
        async with httpx.AsyncClient(timeout=30) as client, consumers(placement, "bq") as readers:
            await wait_consumers(client, a.url, "bq", 4)
            keys = await publish_alternately(client, [a.url, b.url], "bq", 200)
            assert keys == [f"bq:{i}" for i in range(1, 201)]
            for reader in readers:
                await reader.wait_count(200, timeout=30)
            for reader in readers:
                assert reader.keys == keys, reader.kind
                assert [m["value"] for m in reader.messages] == [f"value-{i}" for i in range(200)]
            final = await stats(client, "bq", base=b.url)
            assert (final["length"], final["leased"], final["delivered"]) == (0, 0, 200)


async def test_roundrobin_each_message_goes_to_exactly_one_consumer_fairly(redis_url: str, tmp_path: Path) -> None:
    with serve_nodes(redis_url, tmp_path, 2) as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(f"{a.url}/p/rr", data={"policy": "roundrobin"})).status_code == 200
            placement = [("comet", a.url), ("ws", a.url), ("sse", b.url), ("comet", b.url)]
            async with consumers(placement, "rr") as readers:
                await wait_consumers(client, b.url, "rr", 4)
                keys = await publish_alternately(client, [a.url, b.url], "rr", 200)

                async def all_delivered() -> bool:
                    return sum(len(r.messages) for r in readers) >= 200

                await wait_for(all_delivered, 30, what="200 roundrobin deliveries")

                async def settled() -> dict[str, Any] | None:
                    current = await stats(client, "rr", base=a.url)
                    return current if current["length"] == 0 and current["leased"] == 0 else None

                final = await wait_for(settled, 10, what="every streamed message acked")
                delivered = Counter(key for r in readers for key in r.keys)
                assert sorted(delivered, key=lambda k: int(k.split(":")[1])) == keys
                assert set(delivered.values()) == {1}, "a message went to two consumers"
                shares = [len(r.messages) for r in readers]
                assert min(shares) >= 40, f"unfair rotation: {shares}"
                for reader in readers:  # each consumer's share arrives in queue order
                    numbers = [int(k.split(":")[1]) for k in reader.keys]
                    assert numbers == sorted(numbers), reader.kind
                assert isinstance(final, dict) and final["acked"] == 200


@pytest.mark.parametrize("policy", ["broadcast", "roundrobin"])
async def test_stop_on_one_node_pauses_consumers_on_another_and_start_resumes_with_backlog(
    redis_url: str, tmp_path: Path, policy: str
) -> None:
    with serve_nodes(redis_url, tmp_path, 2) as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(f"{a.url}/p/fc", data={"policy": policy})).status_code == 200
            async with consumers([("comet", b.url), ("ws", b.url)], "fc") as readers:
                await wait_consumers(client, a.url, "fc", 2)
                first = await add(client, "fc", "before stop", base=a.url)
                for reader in readers if policy == "broadcast" else []:
                    await reader.wait_count(1)
                if policy == "roundrobin":
                    await wait_for(_total(readers, 1), 10, what="the first message")

                stopped = await client.post(f"{a.url}/control/fc", data={"status": "stop"})
                assert stopped.json()["status"] == "stop"
                while_stopped = await publish_alternately(client, [a.url, b.url], "fc", 10)
                current = await stats(client, "fc", base=b.url)
                assert current["status"] == "stop"
                assert current["length"] == len(while_stopped), current  # nothing was taken for delivery
                assert current["delivered"] == 1
                assert [k for r in readers for k in r.keys] == [first] * (2 if policy == "broadcast" else 1)

                started = await client.post(f"{a.url}/control/fc", data={"status": "start"})
                assert started.json()["status"] == "start"
                if policy == "broadcast":
                    for reader in readers:
                        await reader.wait_count(11)
                        assert reader.keys == [first, *while_stopped]
                else:
                    await wait_for(_total(readers, 11), 10, what="the backlog")
                    assert sorted((k for r in readers for k in r.keys), key=lambda k: int(k.split(":")[1])) == [
                        first,
                        *while_stopped,
                    ]
                assert (await stats(client, "fc", base=a.url))["length"] == 0


def _total(readers: list[Reader], n: int) -> Any:
    async def enough() -> bool:
        return sum(len(r.messages) for r in readers) >= n

    return enough


async def test_delete_on_one_node_closes_streams_on_another(redis_url: str, tmp_path: Path) -> None:
    with serve_nodes(redis_url, tmp_path, 2) as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            placement = [("comet", b.url), ("sse", b.url), ("ws", b.url), ("comet", a.url)]
            async with consumers(placement, "del") as readers:
                await wait_consumers(client, a.url, "del", 4)
                await add(client, "del", "delivered", base=a.url)
                for reader in readers:
                    await reader.wait_count(1)
                deleted = await client.delete(f"{a.url}/q/del")
                assert deleted.status_code == 200
                assert deleted.json()["queue"] == "del"
                for reader in readers:
                    await reader.wait_ended(timeout=10)
                    assert reader.error is None, f"{reader.kind}: {reader.error!r}"
                ws_reader = readers[2]
                assert ws_reader.close_code == 1000
                assert "deleted" in (ws_reader.close_reason or "")
                await wait_consumers(client, b.url, "del", 0)


async def test_consumer_count_spans_nodes_and_drops_to_zero(redis_url: str, tmp_path: Path) -> None:
    with serve_nodes(redis_url, tmp_path, 3) as (a, b, c):
        async with httpx.AsyncClient(timeout=30) as client:
            async with consumers([("comet", a.url), ("ws", a.url)], "pres"):
                async with consumers([("sse", b.url)], "pres"):
                    for node in (a, b, c):
                        await wait_consumers(client, node.url, "pres", 3)
                await wait_consumers(client, c.url, "pres", 2)
            for node in (a, b, c):
                await wait_consumers(client, node.url, "pres", 0)
            assert (await stats(client, "pres", base=c.url))["consumers"] == 0


async def test_sigkill_of_a_streaming_node_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    total = 500
    with serve_nodes(redis_url, tmp_path, 2) as (a, b):
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.post(f"{b.url}/p/kill", data={"policy": "roundrobin"})).status_code == 200
            async with (
                consumers([("comet", a.url), ("ws", a.url)], "kill") as on_a,
                consumers([("comet", b.url), ("sse", b.url)], "kill") as on_b,
            ):
                await wait_consumers(client, b.url, "kill", 4)
                added: list[str] = []

                async def produce() -> None:
                    async with httpx.AsyncClient(timeout=30) as producer:
                        for i in range(total):
                            added.append(await add(producer, "kill", f"m{i}", base=b.url))

                producing = asyncio.create_task(produce())
                await wait_for(_total(on_a, 20), 20, what="node A to stream some messages")
                a.kill()  # SIGKILL: no chance to release what it holds
                assert not producing.done(), "the producer finished before the kill; make it longer"
                await producing
                assert len(added) == total
                for reader in on_a:
                    await reader.wait_ended(timeout=10)

                def delivered() -> set[str]:
                    return {k for r in [*on_a, *on_b] for k in r.keys}

                async def all_delivered() -> bool:
                    return delivered() >= set(added)

                # A's consumers leave the rotation, and its in-flight messages come back, once its heartbeat
                # lapses (2 s; tests/faults/test_server_kill.py bounds the delay): B's consumers get the rest.
                try:
                    await wait_for(all_delivered, 45, 0.1, "every message delivered")
                except AssertionError:
                    current = await stats(client, "kill", base=b.url)
                    raise AssertionError(f"{len(set(added) - delivered())} undelivered; stats {current}") from None
                assert [r.error for r in on_b if r.error is not None] == []

            async def released() -> bool:  # leases held by B's consumers or A's dead ones are gone
                return bool((await stats(client, "kill", base=b.url))["leased"] == 0)

            await wait_for(released, 30, 0.1, "no message leased any more")
            left = [message["key"] for message in await drain(client, "kill", base=b.url)]
            union = delivered() | set(left)
            missing = sorted(set(added) - union, key=lambda k: int(k.split(":")[1]))
            assert not missing, f"{len(missing)} lost: {missing[:20]}"
            assert union == set(added)
            assert "Traceback" not in b.log(), b.log()[-3000:]
