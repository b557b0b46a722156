"""Operation keys: a first attempt sends its key once (no lookup), a retry twice (a lookup, then the replay); where
the client resends calls by itself, every attempt sends it twice. And the scripts are one library, each a function
named after it."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from restmq.storage import keys, scripts
from restmq.storage.cluster import _WarmCluster
from restmq.storage.node import OPERATIONS, RedisStore, _repeat

pytestmark = pytest.mark.unit


def store() -> RedisStore:
    return RedisStore(Redis.from_url("redis://127.0.0.1:1"))  # never connects: no command is sent


def test_a_first_attempt_sends_a_new_operation_key_once() -> None:
    qk = keys.queue_keys("jobs")
    (first, first_id), (_, second_id) = store()._operation(qk), store()._operation(qk)
    assert len(first) == 1 and first_id != second_id
    assert first[0].startswith("rmq:{jobs}:ops:")


@pytest.mark.parametrize("script", sorted(OPERATIONS))
def test_a_retry_sends_the_same_operation_key_twice(script: str) -> None:
    sent = [*keys.queue_keys("jobs").message_keys, *store()._operation(keys.queue_keys("jobs"))[0]]
    assert _repeat(script, sent) == [*sent, sent[-1]]


def test_a_retried_read_keeps_its_keys() -> None:
    sent = list(keys.queue_keys("jobs").message_keys)
    assert _repeat("peek_recent", sent) == sent


def test_where_the_client_resends_by_itself_every_attempt_asks_for_the_lookup() -> None:
    resent = store()
    resent.retries_broken_calls = False  # as ClusterStore: redis-py's cluster client repeats a broken command
    op, _ = resent._operation(keys.queue_keys("jobs"))
    assert len(op) == 2 and op[0] == op[1]


def test_the_library_registers_each_script_as_a_function_named_after_it() -> None:
    library = scripts.library()
    assert re.fullmatch(r"restmq_[0-9a-f]{16}", library.name)
    assert library.code.startswith(f"#!lua name={library.name}\n")
    registered = re.findall(r"function_name = '(\w+)'", library.code)
    assert registered == [library.function(name) for name in scripts.names()]
    defined = re.findall(r"^local function (\w+)\(", library.code, re.MULTILINE)
    assert len(defined) == len(set(defined))  # the prelude once, not once per script


def test_read_only_scripts_may_run_on_a_replica_and_removals_above_maxmemory() -> None:
    code = scripts.library().code
    for name in scripts.names():
        flags = re.search(rf"function_name = '\w+_{name}', flags = (\{{[^}}]*\}})", code)
        assert flags is not None
        expected = "{'no-writes'}" if name in scripts.READ_ONLY else "{}"
        expected = "{'allow-oom'}" if name in scripts.RUN_UNDER_OOM else expected
        assert flags.group(1) == expected, name
    assert "add" not in scripts.RUN_UNDER_OOM and "pop" in scripts.RUN_UNDER_OOM


async def test_a_cluster_routes_a_script_call_by_its_first_key_without_asking_the_server() -> None:
    """redis-py's own routing of FCALL asks the server for its keys (COMMAND GETKEYS): a round trip per call."""
    client = SimpleNamespace(keyslot=lambda key: key_slot(key.encode()))
    meta = keys.queue_keys("jobs").meta
    slot = await _WarmCluster._determine_slot(client, "FCALL", "restmq_x_add", 2, meta, "rmq:{jobs}:msgs")  # type: ignore[arg-type]
    assert slot == key_slot(meta.encode())
