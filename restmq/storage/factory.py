"""Build the Store for the configured backend mode."""

from __future__ import annotations

from collections.abc import Sequence

from restmq.storage.base import Store
from restmq.storage.node import RedisStore


def open_store(urls: Sequence[str], cluster_url: str | None = None) -> Store:
    """A store over one Redis/Valkey URL."""
    if cluster_url:
        raise ValueError("--redis-cluster is not supported by this build yet")
    if len(urls) != 1:
        raise ValueError("exactly one --redis URL is supported by this build")
    return RedisStore.from_url(urls[0])
