"""restmq.Client (blocking) against a real server: every method, its options and its errors.

The in-process server runs in the test's event loop, so each scenario runs in a worker thread
(`asyncio.to_thread`) while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import restmq
from restmq.client import (
    AuthError,
    BadRequestError,
    Client,
    ConflictError,
    ConnectionFailed,
    LeaseExpired,
    LeaseStale,
    Message,
    MessageNotFound,
    NotFoundError,
    QueueStats,
)
from restmq.errors import RestMQError
from tests.helpers.server import free_port
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


async def in_thread(server: str, scenario: Callable[[Client], Any]) -> Any:
    def run() -> Any:
        with Client(server, timeout=10) as client:
            return scenario(client)

    return await asyncio.to_thread(run)


def test_top_level_exports() -> None:
    assert restmq.Client is Client
    assert restmq.AsyncClient.__name__ == "AsyncClient"


async def test_add_and_take_in_order(server: str) -> None:
    def scenario(client: Client) -> None:
        assert client.add("jobs", "one") == "jobs:1"
        assert client.add("jobs", {"n": 2}) == "jobs:2"
        assert client.add("jobs", b"three") == "jobs:3"
        first = client.take("jobs")
        assert first == Message("jobs", "jobs:1", "one", 1, None)
        second = client.get("jobs")
        assert second is not None and second.json() == {"n": 2} and not second.leased
        assert [m.value for m in client.take("jobs", count=10)] == ["three"]
        assert client.take("jobs") is None
        assert client.get("jobs", count=5) == []

    await in_thread(server, scenario)


async def test_batch_add_is_ordered_and_all_or_nothing(server: str) -> None:
    def scenario(client: Client) -> None:
        keys = client.add_batch("b", ["a", {"b": 1}, 3])
        assert keys == ["b:1", "b:2", "b:3"]
        assert client.add_batch("b", []) == []
        assert [m.value for m in client.get("b", count=10)] == ["a", '{"b":1}', "3"]
        with pytest.raises(BadRequestError) as caught:
            client.add_batch("b", ["ok"], priority=42)
        assert caught.value.code == "PARAMETER_INVALID" and caught.value.status == 400
        assert client.stats("b").length == 0

    await in_thread(server, scenario)


async def test_add_options_delay_ttl_priority(server: str) -> None:
    def scenario(client: Client) -> None:
        client.add("p", "low")
        client.add("p", "high", priority=9)
        client.add("p", "later", delay=0.5)
        client.add("p", "short-lived", ttl=0.3)
        assert client.take("p") is not None and client.stats("p").delayed == 1

        def due_and_dropped() -> bool:  # the reaper promoted the delayed one and dropped the short-lived one
            current = client.stats("p")
            return current.delayed == 0 and current.counters.get("expired") == 1

        wait_until(due_and_dropped, 10, what="the delay to come due and the ttl to drop a message")
        values = [m.value for m in client.take("p", count=10)]
        assert values == ["low", "later"], values

    await in_thread(server, scenario)


async def test_priority_orders_delivery(server: str) -> None:
    def scenario(client: Client) -> None:
        client.add_batch("prio", ["a", "b"])
        client.add("prio", "urgent", priority=9)
        assert [m.value for m in client.take("prio", count=3)] == ["urgent", "a", "b"]

    await in_thread(server, scenario)


async def test_idempotency_key_replays_the_first_key(server: str) -> None:
    def scenario(client: Client) -> None:
        first = client.add("idem", "x", idempotency_key="order-17")
        again = client.add("idem", "x", idempotency_key="order-17")
        assert first == again == "idem:1"
        keys = client.add_batch("idem", ["a", "b"], idempotency_key="batch-1")
        assert client.add_batch("idem", ["a", "b"], idempotency_key="batch-1") == keys
        assert client.stats("idem").length == 3

    await in_thread(server, scenario)


async def test_long_poll_returns_when_a_message_arrives(server: str) -> None:
    def scenario(client: Client) -> None:
        timer = threading.Timer(0.3, lambda: client.add("lp", "late"))
        timer.start()
        started = time.monotonic()
        message = client.get("lp", wait=10)
        elapsed = time.monotonic() - started
        timer.join()
        assert message is not None and message.value == "late"
        assert 0.2 < elapsed < 5
        started = time.monotonic()
        assert client.get("lp", wait=0.3) is None
        assert time.monotonic() - started >= 0.25

    await in_thread(server, scenario)


async def test_lease_ack_release_extend(server: str) -> None:
    def scenario(client: Client) -> None:
        client.add("work", "w1")
        leased = client.lease("work", 30)
        assert leased is not None and leased.leased and leased.lease == 30 and leased.count == 1
        assert client.stats("work").leased == 1
        assert client.extend(leased, 60) == 1
        assert client.release(leased) == 1
        again = client.get("work", lease=30)
        assert again is not None and again.key == leased.key and again.count == 2
        with pytest.raises(LeaseStale) as stale:  # the first delivery's count no longer matches
            client.ack(leased)
        assert stale.value.code == "LEASE_STALE" and stale.value.status == 409
        assert isinstance(stale.value, ConflictError) and isinstance(stale.value, RestMQError)
        assert client.ack(again) == 2
        with pytest.raises(MessageNotFound):
            client.ack(again.key)
        many = client.lease("work", 30, count=5)
        assert many == []

    await in_thread(server, scenario)


async def test_settle_by_key_and_count(server: str) -> None:
    def scenario(client: Client) -> None:
        key = client.add("keyed", "v")
        message = client.lease("keyed", 30)
        assert message is not None
        assert client.release(key, count=1, delay=0.2) == 1
        assert client.get("keyed") is None  # delayed by the release
        message = client.get("keyed", wait=5, lease=30)
        assert message is not None and message.count == 2
        assert client.extend(key, 10, count=2) == 2
        assert client.ack(key, count=2) == 2

    await in_thread(server, scenario)


async def test_expired_lease_is_redelivered_and_settling_it_conflicts(server: str) -> None:
    def scenario(client: Client) -> None:
        client.add("exp", "v")
        message = client.lease("exp", 0.2)
        assert message is not None
        wait_until(lambda: client.stats("exp").leased == 0, 10, what="the lease to expire")
        with pytest.raises(LeaseExpired) as caught:
            client.ack(message)
        assert caught.value.code == "LEASE_EXPIRED"
        redelivered = client.take("exp")
        assert redelivered is not None and redelivered.count == 2

    await in_thread(server, scenario)


async def test_soft_get_and_delete_message(server: str) -> None:
    def scenario(client: Client) -> None:
        assert client.soft_get("soft") is None
        key = client.add("soft", "stay")
        first = client.soft_get("soft")
        second = client.soft_get("soft")
        assert first is not None and second is not None
        assert (first.key, first.count, second.count) == (key, 1, 2)
        assert client.delete_message(key) is True
        assert client.delete_message(key) is False
        assert client.soft_get("soft") is None

    await in_thread(server, scenario)


async def test_purge_queues_and_stats(server: str) -> None:
    def scenario(client: Client) -> None:
        client.add_batch("s1", ["a", "b", "c"])
        client.add("s2", "x")
        assert {"s1", "s2"} <= set(client.queues())
        stats = client.stats("s1")
        assert isinstance(stats, QueueStats)
        assert (stats.queue, stats.length, stats.status, stats.policy) == ("s1", 3, "start", "broadcast")
        assert stats.counters["added"] == 3
        overview = client.stats_all()
        assert {s.queue for s in overview.queues} >= {"s1", "s2"}
        assert overview.nodes
        assert client.purge("s1") == 3
        assert client.stats("s1").length == 0
        assert client.purge("s1") == 0

    await in_thread(server, scenario)


async def test_policy_and_control(server: str) -> None:
    def scenario(client: Client) -> None:
        assert client.policy("pc") == "broadcast"
        assert client.set_policy("pc", "roundrobin") == "roundrobin"
        assert client.policy("pc") == "roundrobin"
        control = client.control("pc")
        assert (control.queue, control.status, control.max_deliveries) == ("pc", "start", 0)
        assert client.set_control("pc", status="stop").status == "stop"
        client.add("pc", "held")
        assert client.take("pc") is None  # stopped: nothing is delivered
        assert client.soft_get("pc") is None
        assert client.set_control("pc", status="start", max_deliveries=3).max_deliveries == 3
        assert client.take("pc") is not None
        with pytest.raises(BadRequestError) as caught:
            client.set_policy("pc", "sideways")
        assert caught.value.code == "PARAMETER_INVALID"
        with pytest.raises(ValueError):
            client.set_control("pc")

    await in_thread(server, scenario)


async def test_dead_letters_and_redrive(server: str) -> None:
    def scenario(client: Client) -> None:
        client.set_control("dl", max_deliveries=1)
        client.add("dl", "poison")
        message = client.lease("dl", 30)
        assert message is not None
        client.release(message)  # delivered once without an ack: dead
        assert client.stats("dl").dead == 1
        assert client.redrive("dl") == 1  # either name works
        assert client.redrive("dl:dead") == 0
        again = client.take("dl")
        assert again is not None and again.value == "poison" and again.count == 1

    await in_thread(server, scenario)


async def test_health_and_ready(server: str) -> None:
    def scenario(client: Client) -> None:
        assert client.health()["status"] == "ok"
        assert client.ready() is True

    await in_thread(server, scenario)


async def test_errors_carry_the_server_code(server: str) -> None:
    def scenario(client: Client) -> None:
        with pytest.raises(BadRequestError) as caught:
            client.get("q", wait=1000)
        assert caught.value.code == "PARAMETER_INVALID" and "wait" in caught.value.message
        with pytest.raises(BadRequestError) as bad_name:
            client.add("no/slashes", "x")  # refused before it can reach a URL path
        assert bad_name.value.code == "QUEUE_NAME_INVALID"
        with pytest.raises(NotFoundError):
            client.ack("q:12345")
        with pytest.raises(BadRequestError):
            client.ack("not-a-key")

    await in_thread(server, scenario)


def test_connection_failure_is_a_transport_error() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", connect_timeout=2) as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.add("q", "x")
    assert caught.value.code == "CONNECTION_FAILED" and caught.value.status == 0


async def test_env_url_and_token(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTMQ_URL", server)
    monkeypatch.setenv("RESTMQ_TOKEN", "")

    def scenario() -> str:
        with Client() as client:
            return client.add("env", "v")

    assert await asyncio.to_thread(scenario) == "env:1"


async def test_consume_with_threads(server: str) -> None:
    def scenario(client: Client) -> tuple[Any, list[str], QueueStats]:
        client.add_batch("tjobs", [f"t{i}" for i in range(30)])
        seen: list[str] = []
        lock = threading.Lock()
        failed: set[str] = set()

        def handler(message: Message) -> None:
            if message.value == "t3" and "t3" not in failed:
                failed.add("t3")
                raise ValueError("first try fails")
            with lock:
                seen.append(message.value)

        stats = client.consume(
            "tjobs", handler, concurrency=4, lease=10, wait=0.2, backoff=0.05, max_messages=31, handle_signals=False
        )
        return stats, seen, client.stats("tjobs")

    stats, seen, queue = await in_thread(server, scenario)
    assert (stats.handled, stats.failed) == (30, 1)
    assert sorted(seen) == sorted(f"t{i}" for i in range(30))
    assert (queue.length, queue.leased, queue.delayed) == (0, 0, 0)


async def test_consume_stops_on_event_and_leaves_unhandled_messages_queued(server: str) -> None:
    def scenario(client: Client) -> tuple[Any, QueueStats]:
        client.add_batch("tstop", ["1", "2", "3", "4"])
        stop = threading.Event()

        def handler(message: Message) -> None:
            stop.set()  # the first message stops the loop; it is still acked

        stats = client.consume("tstop", handler, wait=0.2, stop=stop, handle_signals=False)
        return stats, client.stats("tstop")

    stats, queue = await in_thread(server, scenario)
    assert stats.handled == 1
    assert (queue.length, queue.leased) == (3, 0)


async def test_sync_stream_broadcast_and_lease_mode(server: str) -> None:
    def scenario(client: Client) -> tuple[list[str], list[str], QueueStats]:
        producer = threading.Timer(0.5, lambda: client.add_batch("snews", ["a", "b", "c"]))
        producer.start()
        broadcast: list[str] = []
        with client.stream("snews") as stream:
            for message in stream:
                broadcast.append(message.key)
                if len(broadcast) == 3:
                    break
        producer.join()
        assert stream.last_event_id == "snews:3" and stream.connects == 1
        client.set_policy("sjobs", "roundrobin")
        client.add_batch("sjobs", ["x", "y"])
        leased: list[str] = []
        with client.stream("sjobs", lease=30) as stream:
            for message in stream:
                assert message.leased
                leased.append(message.value)
                if len(leased) == 2:
                    break
        return broadcast, leased, client.stats("sjobs")

    broadcast, leased, stats = await in_thread(server, scenario)
    assert broadcast == ["snews:1", "snews:2", "snews:3"]
    assert leased == ["x", "y"]
    assert (stats.length, stats.leased, stats.counters["acked"]) == (0, 0, 2)


async def test_sync_stream_close_from_another_thread_ends_the_iteration(server: str) -> None:
    def scenario(client: Client) -> tuple[list[str], bool, float]:
        stream = client.stream("quiet")
        ended: list[str] = []

        def read() -> None:
            for message in stream:
                ended.append(message.key)
            ended.append("ended")

        reader = threading.Thread(target=read)
        reader.start()
        # the server holds the stream: the reader is blocked waiting for an event
        wait_until(lambda: client.stats("quiet").consumers == 1, 10, what="the stream to be open")
        started = time.monotonic()
        stream.close()
        reader.join(10)
        return ended, reader.is_alive(), time.monotonic() - started

    ended, alive, took = await in_thread(server, scenario)
    assert ended == ["ended"] and not alive and took < 5


async def test_a_token_is_sent_as_bearer(server: str) -> None:
    def scenario() -> AuthError:
        with Client(server, token="rmq_unknown_token") as client:
            with pytest.raises(AuthError) as caught:
                client.stats("q")
            return caught.value

    error = await asyncio.to_thread(scenario)
    assert (error.status, error.code) == (401, "TOKEN_INVALID")
