"""The RestMQ Python client: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), on httpx.

It imports nothing from the server (no Starlette, no Redis)::

    from restmq import Client

    with Client("http://127.0.0.1:8888") as client:
        key = client.add("jobs", {"id": 1})
        message = client.lease("jobs", 30)
        client.ack(message)

See docs/client.md.
"""

from __future__ import annotations

from restmq.client._stream import Gap
from restmq.client.aio import AsyncClient, AsyncStream
from restmq.client.errors import (
    APIError,
    AuthError,
    BackendUnavailableError,
    BadRequestError,
    ClientError,
    ConflictError,
    ConnectionFailed,
    LeaseExpired,
    LeaseStale,
    MessageNotFound,
    NotFoundError,
    PayloadTooLargeError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from restmq.client.models import ConsumeStats, Control, Message, Overview, QueueStats, Schedule
from restmq.client.sync import Client, Stream

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncStream",
    "AuthError",
    "BackendUnavailableError",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "ConnectionFailed",
    "ConsumeStats",
    "Control",
    "Gap",
    "LeaseExpired",
    "LeaseStale",
    "Message",
    "MessageNotFound",
    "NotFoundError",
    "Overview",
    "Schedule",
    "PayloadTooLargeError",
    "QueueStats",
    "RequestTimeout",
    "ServerError",
    "Stream",
    "TransportError",
]
