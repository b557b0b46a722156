"""Build the Store for the configured backend mode."""

from __future__ import annotations

from collections.abc import Sequence

from restmq.core.store import Store
from restmq.storage.cluster import ClusterStore
from restmq.storage.node import RedisStore
from restmq.storage.sharded import ShardedStore


def open_store(
    urls: Sequence[str],
    cluster_url: str | None = None,
    *,
    coalesce: bool = True,
    placement: str = "static",
    placement_interval: float = 30.0,
    plain_batches: bool = False,
) -> Store:
    """One node, a consistent-hash ring over several nodes, or a Redis Cluster. `coalesce` pipelines
    the commands of concurrent requests (single nodes and rings; a cluster client routes per slot);
    `plain_batches` writes batch adds without options in MULTI/EXEC (node.py, plain_add.py; not on a cluster)."""
    if cluster_url:
        return ClusterStore.from_cluster_url(cluster_url)
    if not urls:
        raise ValueError("no backend URL given")
    if len(urls) == 1 and "weight=" not in urls[0]:
        return RedisStore.from_url(urls[0], coalesce=coalesce, plain_batches=plain_batches)
    return ShardedStore(
        urls,
        coalesce=coalesce,
        plain_batches=plain_batches,
        placement=placement,
        placement_interval=placement_interval,
    )
