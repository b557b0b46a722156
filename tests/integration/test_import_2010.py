"""`restmq import-2010` (issue 17) on a real valkey filled by RestMQ 2010's own code (tests/helpers/restmq2010.py),
imported by the real command into every backend mode, read back in order; a second run adds nothing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from restmq.core.model import FlowStatus, Policy, PopMode
from restmq.core.store import Store
from restmq.storage.engine import EmbeddedEngine
from restmq.storage.factory import open_store
from tests.helpers.auth import restmq_cli
from tests.helpers.cluster import Cluster
from tests.helpers.restmq2010 import RedisOperations
from tests.helpers.server import serve
from tests.helpers.topology import flush_cluster, flush_engines

pytestmark = pytest.mark.integration

JOBS = ["one", "two", "três", '{"json": [1, 2]}', "five"]


@dataclass
class Old:
    url: str
    client: redis.Redis
    ops: RedisOperations


@dataclass
class Target:
    args: list[str]  # how `restmq import-2010` names it (as `restmq serve` would)
    urls: list[str]
    cluster: str | None = None


@pytest.fixture
def old(own_engine: EmbeddedEngine) -> Iterator[Old]:
    """A Redis as RestMQ 2010 left it, on an engine of its own."""
    client = redis.Redis(unix_socket_path=own_engine.socket_path, decode_responses=True)
    yield Old(own_engine.url, client, RedisOperations(client))
    client.close()


@pytest.fixture
def target(redis_url: str) -> Target:
    return Target(["--redis", redis_url], [redis_url])


@pytest.fixture(params=["node", "ring", "cluster"])
def any_target(request: pytest.FixtureRequest) -> Target:
    if request.param == "node":
        url: str = request.getfixturevalue("redis_url")
        return Target(["--redis", url], [url])
    if request.param == "ring":
        ring: list[EmbeddedEngine] = request.getfixturevalue("ring_engines")
        flush_engines(ring)
        return Target(["--redis", ",".join(e.url for e in ring)], [e.url for e in ring])
    cluster: Cluster = request.getfixturevalue("shared_cluster")
    flush_cluster(cluster)
    return Target(["--redis-cluster", cluster.url], [], cluster.url)


@pytest.fixture
async def store_of(any_target: Target) -> AsyncIterator[Store]:
    opened = open_store(any_target.urls, any_target.cluster)
    yield opened
    await opened.close()


def fill(old: Old) -> None:
    """What a 2010 server's users left: jobs (stopped, roundrobin), events with a consumed message, one
    deleted while still listed and one expiring; an emptied queue with a policy; a purged one."""
    for value in JOBS:
        old.ops.queue_add("jobs", value)
    old.ops.queue_policy_set("jobs", "roundrobin")
    old.ops.queue_changestatus("jobs", old.ops.STOPQUEUE)
    for value in ("e1", "e2", "e3", "e4"):
        old.ops.queue_add("events", value)
    old.ops.queue_get("events")  # consumed: e1 left the list (its value stays, as 2010 left it)
    old.ops.queue_get("events", softget=True)  # a soft get: e2 stays listed
    old.ops.queue_del("events", "events:3")  # e3 deleted by key, still listed: gone
    old.ops.queue_add("events", "expiring", ttl=3600)
    old.ops.queue_add("emptied", "x")
    old.ops.queue_get("emptied")
    old.ops.queue_policy_set("emptied", "roundrobin")
    old.ops.queue_add("purged", "y")
    old.ops.queue_purge("purged")


def run_import(old: Old, target: Target, *extra: str) -> subprocess.CompletedProcess[str]:
    return restmq_cli("import-2010", "--from", old.url, *target.args, *extra)


def row(output: str, queue: str) -> list[str]:
    """The cells of `queue`'s row in a rich table."""
    line = next(line for line in output.splitlines() if re.match(rf"^\W*{re.escape(queue)}\s", line))
    return [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]


async def take_all(store: Store, queue: str) -> list[str]:
    result = await store.pop(queue, PopMode.TAKE, count=100)
    return [message.value for message in result.messages]


async def test_import_copies_messages_in_order_with_status_and_policy_on_every_backend_mode(
    old: Old, any_target: Target, store_of: Store
) -> None:
    fill(old)
    result = run_import(old, any_target)
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, "jobs")[:7] == ["jobs", "5", "0", "0", "0", "stop", "roundrobin"]
    assert row(result.stdout, "events")[:5] == ["events", "3", "0", "1", "0"]  # e2, e4, expiring; e3 gone
    jobs = await store_of.settings("jobs")
    assert (jobs.status, jobs.policy) == (FlowStatus.STOP, Policy.ROUNDROBIN)
    assert (await store_of.pop("jobs", PopMode.TAKE)).stopped  # stopped as it was: delivers nothing
    await store_of.update_settings("jobs", status="start")
    assert await take_all(store_of, "jobs") == JOBS
    assert await take_all(store_of, "events") == ["e2", "e4", "expiring"]
    assert (await store_of.settings("emptied")).policy == Policy.ROUNDROBIN
    assert await take_all(store_of, "emptied") == [] and await take_all(store_of, "purged") == []


async def test_a_second_run_adds_nothing_twice_even_after_consumers_took_some(old: Old, target: Target) -> None:
    fill(old)
    assert run_import(old, target).returncode == 0
    store = open_store(target.urls)
    try:
        await store.update_settings("jobs", status="start")
        assert await take_all(store, "events") == ["e2", "e4", "expiring"]  # consumed on the new server
        old.ops.queue_add("jobs", "six")  # the old server took one more before it was switched off
        again = run_import(old, target)
        assert again.returncode == 0, again.stderr
        assert row(again.stdout, "jobs")[:3] == ["jobs", "1", "5"] and row(again.stdout, "events")[:3] == [
            "events",
            "0",
            "3",
        ]
        assert (await store.settings("jobs")).status == FlowStatus.STOP  # settings are 2010's again
        await store.update_settings("jobs", status="start")
        assert await take_all(store, "jobs") == [*JOBS, "six"]  # no duplicate, the new one last
        assert await take_all(store, "events") == []  # what was consumed does not come back
    finally:
        await store.close()


def test_an_expiring_2010_message_keeps_what_is_left_of_its_time(old: Old, target: Target) -> None:
    old.ops.queue_add("timed", "soon", ttl=3600)
    assert run_import(old, target).returncode == 0
    client = redis.Redis.from_url(target.urls[0])
    try:
        expiries: list[tuple[bytes, float]] = client.zrange("rmq:{timed}:expires", 0, -1, withscores=True)  # type: ignore[assignment]
        [(_, deadline_ms)] = expiries
        now_ms = float(client.time()[0]) * 1000
        assert now_ms + 3500_000 < float(deadline_ms) <= now_ms + 3601_000
    finally:
        client.close()


async def test_dry_run_lists_what_it_would_do_and_changes_nothing(old: Old, target: Target) -> None:
    fill(old)
    old.client.sadd("QUEUESET", "bad name")  # a 2010 queue name this server's rules refuse
    old.ops.queue_add("bad name", "z")
    result = run_import(old, target, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, "jobs")[:4] == ["jobs", "5", "stop", "roundrobin"]
    assert row(result.stdout, "events")[:4] == ["events", "4", "start", "broadcast (unset)"]
    assert row(result.stdout, "emptied")[:2] == ["emptied", "0"]
    assert "skipped: invalid queue name" in row(result.stdout, "bad name")[-1]
    store = open_store(target.urls)
    try:
        assert await store.list_queues() == []
    finally:
        await store.close()


def test_a_queue_this_server_cannot_name_is_reported_and_the_rest_imported(old: Old, target: Target) -> None:
    old.ops.queue_add("bad name", "z")
    old.ops.queue_add("good", "g")
    result = run_import(old, target)
    assert result.returncode == 1
    assert row(result.stdout, "good")[:2] == ["good", "1"]
    assert "skipped: invalid queue name" in result.stdout and "some messages were not imported" in result.stderr


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        (None, 1, "is empty: nothing to import"),
        ({"unrelated": "1"}, 1, "has no QUEUESET among its 1 keys: not a RestMQ 2010 database"),
        ({"QUEUESET": "a string"}, 1, "QUEUESET in unix://"),
    ],
)
def test_a_source_that_is_not_a_2010_database_is_a_clear_error(
    old: Old, target: Target, setup: dict[str, str] | None, code: int, message: str
) -> None:
    for key, value in (setup or {}).items():
        old.client.set(key, value)
    result = run_import(old, target)
    assert result.returncode == code and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "old-host"], "Invalid value for --from: use a redis://, rediss://, unix:// URL"),
        (["--from", "redis://old-host", "--remember", "0d"], "Invalid value for --remember: must be more than 0"),
        (["--from", "redis://old-host", "--remember", "soon"], "use a number and a unit: 30s, 15m, 12h, 90d"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = restmq_cli("import-2010", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_an_unreachable_source_is_a_clear_error(tmp_path: Path, target: Target) -> None:
    result = restmq_cli("import-2010", "--from", f"unix://{tmp_path}/nothing.sock", *target.args)
    assert result.returncode == 4, result.stderr
    assert f"restmq: error: cannot read unix://{tmp_path}/nothing.sock" in result.stderr
    assert "Traceback" not in result.stderr


def test_queue_imports_only_the_queues_named(old: Old, target: Target) -> None:
    fill(old)
    result = run_import(old, target, "--queue", "jobs", "--dry-run")
    assert result.returncode == 0 and "jobs" in result.stdout and "events" not in result.stdout
    missing = run_import(old, target, "--queue", "jobs", "--queue", "nope")
    assert missing.returncode == 1 and "restmq: error: no 2010 queue nope in unix://" in missing.stderr


def test_embedded_mode_while_a_server_runs_and_when_none_does(old: Old, tmp_path: Path) -> None:
    """With no --redis, the data dir's engine: the running server's, or started for the import alone."""
    fill(old)
    data = ["--data-dir", str(tmp_path / "data")]
    with serve(data, tmp_path) as server:
        result = restmq_cli("import-2010", "--from", old.url, *data)
        assert result.returncode == 0, result.stderr
        with httpx.Client(base_url=server.url, timeout=20) as http:
            assert http.post("/control/jobs", data={"status": "start"}).status_code == 200
            assert [http.get("/q/jobs").json()["value"] for _ in JOBS] == JOBS
    again = restmq_cli("import-2010", "--from", old.url, *data)  # no server: the command starts the engine
    assert again.returncode == 0, again.stderr
    assert row(again.stdout, "jobs")[:3] == ["jobs", "0", "5"]
