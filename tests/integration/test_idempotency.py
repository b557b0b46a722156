"""Idempotency-Key (or id=) on add: a retry within the window returns the first key (SPEC section 4)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis

from tests.helpers.queues import stats

pytestmark = pytest.mark.integration


async def test_the_same_key_twice_adds_one_message(http: httpx.AsyncClient) -> None:
    first = await http.post("/q/idem", data={"value": "pay 10"}, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 200
    assert first.text == "idem:1\r\n"
    assert "idempotent-replayed" not in first.headers
    again = await http.post("/q/idem", data={"value": "pay 10"}, headers={"Idempotency-Key": "order-1"})
    assert again.status_code == 200
    assert again.text == "idem:1\r\n"
    assert again.headers["Idempotent-Replayed"] == "true"
    current = await stats(http, "idem")
    assert (current["length"], current["added"]) == (1, 1)

    other = await http.post("/q/idem", data={"value": "pay 10"}, headers={"Idempotency-Key": "order-2"})
    assert other.text == "idem:2\r\n"
    assert "idempotent-replayed" not in other.headers
    plain = await http.post("/q/idem", data={"value": "pay 10"})
    assert plain.text == "idem:3\r\n"
    assert (await stats(http, "idem"))["length"] == 3


async def test_a_replay_returns_the_first_key_even_after_it_was_consumed(http: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k"}
    assert (await http.post("/q/idc", data={"value": "a"}, headers=headers)).text == "idc:1\r\n"
    assert (await http.get("/q/idc")).json()["key"] == "idc:1"
    replay = await http.post("/q/idc", data={"value": "a"}, headers=headers)
    assert replay.text == "idc:1\r\n" and replay.headers["Idempotent-Replayed"] == "true"
    assert (await http.get("/q/idc")).status_code == 204


async def test_keys_are_per_queue(http: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "shared"}
    assert (await http.post("/q/qa", data={"value": "x"}, headers=headers)).text == "qa:1\r\n"
    reply = await http.post("/q/qb", data={"value": "x"}, headers=headers)
    assert reply.text == "qb:1\r\n" and "idempotent-replayed" not in reply.headers


async def test_id_field_form_query_and_json_protocol(http: httpx.AsyncClient) -> None:
    assert (await http.post("/q/idf", data={"value": "x", "id": "f1"})).text == "idf:1\r\n"
    replay = await http.post("/q/idf", data={"value": "x", "id": "f1"})
    assert replay.text == "idf:1\r\n" and replay.headers["Idempotent-Replayed"] == "true"
    assert (await http.post("/q/idf?id=f1", content="x")).text == "idf:1\r\n"

    command = {"cmd": "add", "queue": "idf", "value": "y", "id": "j1"}
    one = (await http.post("/queue", json=command)).json()
    two = (await http.post("/queue", json=command)).json()
    assert one == two == {"queue": "idf", "value": "y", "key": "idf:2"}
    assert (await stats(http, "idf"))["length"] == 2


async def test_a_batch_replay_returns_every_first_key(http: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "batch-7"}
    first = await http.post("/q/idb", json=["a", "b", "c"], headers=headers)
    assert first.json() == {"keys": ["idb:1", "idb:2", "idb:3"]}
    again = await http.post("/q/idb", json=["a", "b", "c"], headers=headers)
    assert again.json() == {"keys": ["idb:1", "idb:2", "idb:3"]}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await stats(http, "idb"))["length"] == 3


async def test_concurrent_retries_store_one_message(http: httpx.AsyncClient) -> None:
    replies = await asyncio.gather(
        *(http.post("/q/race", data={"value": "x"}, headers={"Idempotency-Key": "same"}) for _ in range(20))
    )
    assert {r.text for r in replies} == {"race:1\r\n"}
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in replies) == 19
    assert (await stats(http, "race"))["length"] == 1


async def test_bad_idempotency_keys_are_refused(http: httpx.AsyncClient) -> None:
    reply = await http.post("/q/idx", data={"value": "x"}, headers={"Idempotency-Key": "k" * 257})
    assert reply.status_code == 400
    assert (await http.get("/q/idx")).status_code == 204


async def test_the_window_is_five_minutes(http: httpx.AsyncClient, redis_client: redis.Redis) -> None:
    await http.post("/q/win", data={"value": "x"}, headers={"Idempotency-Key": "w"})
    found = list(redis_client.scan_iter(match="rmq:{win}:idem:*", count=1000))
    assert len(found) == 1
    pttl = redis_client.pttl(found[0])
    assert 295_000 < pttl <= 300_000, pttl
    digest = found[0].rsplit(":", 1)[1]  # only a digest of the client's key reaches the key name
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
