"""The key layout: one hash slot per queue (dead letters included), and no two queues share a key."""

from __future__ import annotations

import dataclasses
import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from restmq.storage import keys

pytestmark = pytest.mark.unit

queue_names = st.from_regex(r"[A-Za-z0-9_\-.:@]{1,200}", fullmatch=True)


def all_keys(queue: str) -> list[str]:
    """Every key (and the event channel) of one queue, idempotency keys included."""
    qk = keys.queue_keys(queue)
    names = [getattr(qk, f.name) for f in dataclasses.fields(qk) if f.name != "queue"]
    return [*names, qk.idempotency("retry-1"), qk.idempotency("")]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


@pytest.mark.parametrize("queue", ["q", "jobs:eu", "a" * 200, "@", "q:dead:dead", ":dead"])
def test_every_key_of_a_queue_carries_its_hash_tag(queue: str) -> None:
    tag = "{" + keys.hash_tag(queue) + "}"
    for key in all_keys(queue):
        assert key.startswith(f"rmq:{tag}"), key
        assert key.count("{") == 1 and key.count("}") == 1, key


def test_message_keys_are_the_nine_script_keys_in_order() -> None:
    qk = keys.queue_keys("q")
    assert list(qk.message_keys) == [
        "rmq:{q}:meta",
        "rmq:{q}:msgs",
        "rmq:{q}:ready",
        "rmq:{q}:delayed",
        "rmq:{q}:leased",
        "rmq:{q}:counts",
        "rmq:{q}:prio",
        "rmq:{q}:expires",
        "rmq:{q}:origin",
    ]


def test_dead_letter_queue_shares_the_parent_tag() -> None:
    assert keys.dead_letter_queue("q") == "q:dead"
    assert keys.is_dead_letter_queue("q:dead")
    assert not keys.is_dead_letter_queue(":dead")  # a queue literally named ":dead" is an ordinary queue
    assert not keys.is_dead_letter_queue("q")
    assert keys.hash_tag("q:dead") == "q"
    assert keys.queue_keys("q:dead").meta == "rmq:{q}|dead:meta"
    assert keys.hash_tag("q:dead:dead") == "q:dead"


@pytest.mark.parametrize(
    ("a", "b"),
    [("q", "q:dead"), ("q:dead", "q:dead:dead"), ("q", "q:meta"), ("q", "q:idem"), (":dead", "dead"), ("q", "Q")],
)
def test_lookalike_queues_never_share_a_key(a: str, b: str) -> None:
    assert not set(all_keys(a)) & set(all_keys(b))


def test_global_keys_never_look_like_queue_keys() -> None:
    for key in (keys.QUEUES, keys.TIMERS, keys.REAPER_LOCK, keys.TOKENS):
        assert "{" not in key
        assert key not in all_keys("queues") + all_keys("timers")


@given(queue_names)
def test_all_keys_of_a_queue_hash_to_one_slot(queue: str) -> None:
    slots = {slot(key) for key in all_keys(queue)}
    assert slots == {slot("{" + keys.hash_tag(queue) + "}")}


@given(queue_names)
def test_a_dead_letter_queue_lives_in_its_parent_slot(queue: str) -> None:
    dead = keys.dead_letter_queue(queue)
    assert {slot(key) for key in all_keys(dead)} == {slot(keys.queue_keys(queue).meta)}


@given(queue_names, queue_names)
def test_distinct_queues_have_disjoint_keys(a: str, b: str) -> None:
    for x, y in ((a, b), (keys.dead_letter_queue(a), b), (a, keys.dead_letter_queue(b))):
        if x != y:
            assert not set(all_keys(x)) & set(all_keys(y))


@given(queue_names)
def test_the_stats_keys_are_the_queue_keys_of_the_same_names(queue: str) -> None:
    """Issue 13: stats_keys builds its names directly (no cache churn over every queue); they stay queue_keys'."""
    qk = keys.queue_keys(queue)
    expected = [qk.meta, qk.ready, qk.delayed, qk.leased, qk.consumers]
    if not keys.is_dead_letter_queue(queue):
        expected.append(keys.queue_keys(keys.dead_letter_queue(queue)).ready)
    assert keys.stats_keys(queue) == expected
    assert {slot(key) for key in keys.stats_keys(queue)} == {slot(qk.meta)}


@given(queue_names)
def test_the_index_repair_finds_each_queue_from_its_meta_key(queue: str) -> None:
    meta = keys.queue_keys(queue).meta
    assert keys.queue_of_meta(meta) == queue
    assert fnmatch.fnmatchcase(meta, keys.META_PATTERN)
    assert keys.uncached_queue_keys(queue) == keys.queue_keys(queue)


@pytest.mark.parametrize("queue", ["q", "q:meta", "q:dead", "q:dead:dead", "a:dead:meta"])
def test_every_other_key_of_a_queue_is_no_meta_key(queue: str) -> None:
    others = [key for key in all_keys(queue) if key != keys.queue_keys(queue).meta]
    assert [key for key in others if keys.queue_of_meta(key) is not None] == []


@pytest.mark.parametrize("key", ["rmq:{}:meta", "rmq:{a{b}:meta", "rmq:{a|b}:meta", "rmq:names", "other:{q}:meta"])
def test_keys_that_are_no_queues_meta_are_skipped(key: str) -> None:
    assert keys.queue_of_meta(key) is None


@pytest.mark.parametrize("queue", ["q", "q:dead"])
def test_group_keys_are_derived_from_the_meta_key_as_the_scripts_do(queue: str) -> None:
    """lua/_lib.lua's group_keys: the meta key without its "meta" tail, then "groups" or "parked"."""
    qk = keys.queue_keys(queue)
    assert (qk.groups, qk.parked) == (qk.meta[:-4] + "groups", qk.meta[:-4] + "parked")
