"""Operation keys: a first attempt sends its key once (no lookup), a retry twice (a lookup, then the replay); where
the client resends calls by itself, every attempt sends it twice. And each script carries the prelude it calls."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from restmq.storage import keys, scripts
from restmq.storage.node import OPERATIONS, RedisStore, _repeat

pytestmark = pytest.mark.unit


def store() -> RedisStore:
    return RedisStore(Redis.from_url("redis://127.0.0.1:1"))  # never connects: no command is sent


def test_a_first_attempt_sends_a_new_operation_key_once() -> None:
    qk = keys.queue_keys("jobs")
    first, second = store()._op_keys(qk), store()._op_keys(qk)
    assert len(first) == 1 and first != second
    assert first[0].startswith("rmq:{jobs}:op:")


@pytest.mark.parametrize("script", sorted(OPERATIONS))
def test_a_retry_sends_the_same_operation_key_twice(script: str) -> None:
    sent = [*keys.queue_keys("jobs").message_keys, *store()._op_keys(keys.queue_keys("jobs"))]
    assert _repeat(script, sent) == [*sent, sent[-1]]


def test_a_retried_read_keeps_its_keys() -> None:
    sent = list(keys.queue_keys("jobs").message_keys)
    assert _repeat("peek_recent", sent) == sent


def test_where_the_client_resends_by_itself_every_attempt_asks_for_the_lookup() -> None:
    resent = store()
    resent.retries_broken_calls = False  # as ClusterStore: redis-py's cluster client repeats a broken command
    op = resent._op_keys(keys.queue_keys("jobs"))
    assert len(op) == 2 and op[0] == op[1]


@pytest.mark.parametrize("name", scripts.names())
def test_a_script_defines_every_prelude_function_it_calls_before_its_body(name: str) -> None:
    text = scripts.source(name)
    defined = re.findall(r"^local function (\w+)\(", text, re.MULTILINE)
    _, functions = scripts._prelude()
    called = {f for f in functions if re.search(rf"\b{f}\(", text.replace(f"local function {f}(", ""))}
    assert called <= set(defined)
    assert len(defined) == len(set(defined))
