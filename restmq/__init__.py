"""RestMQ: a message queue that speaks plain HTTP. ``restmq.Client`` and ``restmq.AsyncClient`` are its Python client
(loaded on first use, so the server never imports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from restmq.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from restmq import client

        return getattr(client, name)
    raise AttributeError(f"module 'restmq' has no attribute {name!r}")
