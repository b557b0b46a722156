"""The backend of an admin command that works on storage directly (`restmq token`, `restmq import-2010`):
the options `restmq serve` chooses it with, and the Store they open.

These commands talk to the backend, not to a server, so they also work before the first server starts.
With the embedded engine they use the running server's engine socket, or start the engine for the moment
when no server holds the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import click

from restmq.cli.serve import option
from restmq.core.store import Store
from restmq.errors import EngineError, RestMQError, RingIncomplete

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def backend_options(command: Callable[..., None]) -> Callable[..., None]:
    """--data-dir, --redis, --redis-cluster (and their RESTMQ_* variables), as `restmq serve` takes them."""
    for decorator in reversed(
        [
            option("--data-dir", default="./restmq-data", show_default=True),
            option("--redis", "redis_urls", multiple=True, help="External backend URL(s)."),
            option("--redis-cluster", default=None, help="Redis Cluster seed URL."),
        ]
    ):
        command = decorator(command)
    return command


@contextlib.asynccontextmanager
async def open_backend(data_dir: str, redis_urls: tuple[str, ...], redis_cluster: str | None) -> AsyncIterator[Store]:
    from restmq.storage.factory import open_store  # loads redis only when such a command runs
    from restmq.storage.urls import split_urls

    engine = None
    urls = split_urls(redis_urls)
    if not urls and not redis_cluster:
        from restmq.storage.engine import EmbeddedEngine

        engine = EmbeddedEngine(data_dir)
        try:
            urls = (engine.start(),)
        except EngineError:  # a running server holds the data dir: use its engine's socket
            engine = None
            urls = (EmbeddedEngine(data_dir).url,)
    store = open_store(urls, redis_cluster)
    try:
        yield store
    finally:
        await store.close()
        if engine is not None:
            engine.stop()


def run_on_backend(options: dict[str, object], action: Callable[[Store], Awaitable[T]], retry_hint: str = "") -> T:
    """Run `action` on the backend; a backend error exits non-zero with its message (and, when a ring node
    missed the write, `retry_hint`)."""

    async def main() -> T:
        async with open_backend(**options) as store:  # type: ignore[arg-type]
            return await action(store)

    try:
        return asyncio.run(main())
    except RingIncomplete as exc:
        raise click.ClickException(f"{exc.message}. {retry_hint}" if retry_hint else exc.message) from exc
    except RestMQError as exc:
        raise click.ClickException(exc.message) from exc


def parse_duration(value: str, param_hint: str) -> int:
    """Seconds of a duration such as 30s, 15m, 12h or 90d."""
    match = _DURATION.match(value)
    if not match:
        raise click.BadParameter("use a number and a unit: 30s, 15m, 12h, 90d", param_hint=param_hint)
    return int(match.group(1)) * _UNITS[match.group(2)]
