"""Backend topologies for tests: one node, a consistent-hash ring of embedded engines, a Redis Cluster.

Each helper talks to the backends directly (FLUSHALL, the per-node queue registry) so that tests can
start from empty backends and check where queues landed without going through RestMQ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis

from restmq.storage import keys
from restmq.storage.engine import EmbeddedEngine
from tests.helpers.cluster import Cluster
from tests.helpers.wait import wait_until

TOPOLOGIES = ("node", "ring", "cluster")


def engine_client(engine: EmbeddedEngine, **options: Any) -> redis.Redis:
    """A client of `engine` (`options`: redis.Redis's)."""
    return redis.Redis(unix_socket_path=engine.socket_path, decode_responses=True, **options)


def flush_engines(engines: Sequence[EmbeddedEngine]) -> None:
    for engine in engines:
        client = engine_client(engine)
        try:
            client.flushall()
        finally:
            client.close()


def flush_cluster(cluster: Cluster) -> None:
    """FLUSHALL on every master (replicas follow)."""
    for port in cluster.masters():
        client = redis.Redis(port=port)
        try:
            client.flushall()
        finally:
            client.close()


def registered_queues(engine: EmbeddedEngine) -> set[str]:
    """The node's queue registry (`rmq:names`): which queues have (had) messages there."""
    client = engine_client(engine)
    try:
        return set(client.zrange(keys.QUEUES, 0, -1))  # type: ignore[arg-type]
    finally:
        client.close()


def is_up(engine: EmbeddedEngine) -> bool:
    client = engine_client(engine, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@contextlib.contextmanager
def engines(directory: Path, n: int) -> Iterator[list[EmbeddedEngine]]:
    """`n` embedded engines in sub-directories of `directory`, stopped on the way out."""
    started: list[EmbeddedEngine] = []
    try:
        for i in range(n):
            engine = EmbeddedEngine(directory / f"node{i}")
            engine.start()
            started.append(engine)
        yield started
    finally:
        for engine in started:
            engine.stop()


def restart(engine: EmbeddedEngine) -> None:
    """Start a stopped engine again on the same data dir (and socket) and wait until it answers."""
    engine.start()
    wait_until(lambda: is_up(engine), 10, 0.02, f"engine {engine.url} to answer")


def cluster_slot_owner(cluster: Cluster, key: str) -> int:
    """The port of the master serving `key`'s slot."""
    client = redis.Redis(port=cluster.masters()[0], decode_responses=True)
    try:
        slot = int(client.cluster("KEYSLOT", key))
        for start, end, master, *_ in client.cluster("SLOTS"):
            if int(start) <= slot <= int(end):
                return int(master[1])
    finally:
        client.close()
    raise AssertionError(f"no master serves the slot of {key}")


def _replica_links_up(cluster: Cluster) -> bool:
    for port in cluster.procs:
        client = redis.Redis(port=port, decode_responses=True)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        if info.get("role") == "slave" and info.get("master_link_status") != "up":
            return False
    return True


def wait_replicas_synced(cluster: Cluster, timeout: float = 30.0) -> None:
    """Wait until every replica finished its first sync: `running_cluster` returns once the slots are
    served, and a replica that never synced refuses to fail over ("disconnected from primary for longer
    than allowed")."""
    wait_until(lambda: _replica_links_up(cluster), timeout, 0.05, "every replica's link to its master")
