"""`restmq token create|list|revoke`: manage bearer tokens in the backend directly.

The token commands talk to the backend, not to a server, so they also work before the first
server starts. With the embedded engine they use the running server's engine socket, or start the
engine for the moment when no server holds the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from restmq.cli.serve import option
from restmq.core.store import Store
from restmq.core.tokens import RIGHTS, TokenRecord, new_token
from restmq.errors import EngineError, RestMQError, RingIncomplete

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _backend_options(command: Callable[..., None]) -> Callable[..., None]:
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
async def _store(data_dir: str, redis_urls: tuple[str, ...], redis_cluster: str | None) -> AsyncIterator[Store]:
    from restmq.storage.factory import open_store  # loads redis only when a token command runs
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


def _run(options: dict[str, object], action: Callable[[Store], Awaitable[T]], retry_hint: str = "") -> T:
    """Run `action` on the backend; a backend error exits non-zero with its message (and, when a ring node
    missed the write, `retry_hint`)."""

    async def main() -> T:
        async with _store(**options) as store:  # type: ignore[arg-type]
            return await action(store)

    try:
        return asyncio.run(main())
    except RingIncomplete as exc:
        raise click.ClickException(f"{exc.message}. {retry_hint}" if retry_hint else exc.message) from exc
    except RestMQError as exc:
        raise click.ClickException(exc.message) from exc


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    match = _DURATION.match(value)
    if not match:
        raise click.BadParameter("use a number and a unit: 30s, 15m, 12h, 90d", param_hint="--expires")
    return int(match.group(1)) * _UNITS[match.group(2)]


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens."""


@token.command()
@click.option("--queues", required=True, help="Comma-separated queue patterns, e.g. 'orders.*,audit'.")
@click.option("--rights", required=True, help=f"Comma-separated rights: {', '.join(RIGHTS)}.")
@click.option("--expires", default=None, help="Lifetime such as 30m, 12h or 90d (default: never).")
@click.option("--note", default="", help="A note shown by `restmq token list`.")
@_backend_options
def create(queues: str, rights: str, expires: str | None, note: str, **backend: object) -> None:
    """Create a token and print it once (only its hash is stored). On a ring, every node must be reached."""
    patterns = tuple(p.strip() for p in queues.split(",") if p.strip())
    granted = tuple(r.strip() for r in rights.split(",") if r.strip())
    try:
        secret, record = new_token(patterns, granted, _duration(expires), note)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    _run(backend, lambda store: store.save_token(record.id, record.to_json()))
    click.echo(secret)
    click.echo(f"token {record.id}: {','.join(granted)} on {','.join(patterns)} (shown once; keep it safe)", err=True)


@token.command(name="list")
@_backend_options
def list_tokens(**backend: object) -> None:
    """List tokens (ids, scopes, expiry; never the secrets)."""
    raw = _run(backend, lambda store: store.list_tokens())
    table = Table("id", "queues", "rights", "created", "expires", "note")
    for record in sorted((TokenRecord.from_json(v) for v in raw.values()), key=lambda r: r.created):
        expires = _when(record.expires) + (" (expired)" if record.expired() else "") if record.expires else "never"
        table.add_row(
            record.id, ",".join(record.queues), ",".join(record.rights), _when(record.created), expires, record.note
        )
    Console().print(table)


@token.command()
@click.argument("token_id")
@_backend_options
def revoke(token_id: str, **backend: object) -> None:
    """Revoke a token by id: servers refuse it within 5 seconds and close the streams opened with it.
    On a ring, every node must be reached; otherwise this fails (the nodes reached still revoke it)."""
    if token_id.startswith("rmq_"):
        token_id = token_id[4:].partition("_")[0]
    hint = f"Run `restmq token revoke {token_id}` again once every node is up"
    if not _run(backend, lambda store: store.delete_token(token_id), hint):
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"revoked {token_id}")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
