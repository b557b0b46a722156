"""Connection limits for long-lived requests: per client address and in total. Streams (COMET, SSE,
WebSocket, the dashboard's /stats/stream) and long-polls (GET ?wait=) each hold a slot while open."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from starlette.requests import HTTPConnection

from restmq.errors import TooManyStreams


def client_of(conn: HTTPConnection) -> str:
    """The address the per-client limit counts against."""
    return conn.client.host if conn.client else "unknown"


class StreamSlots:
    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._by_client: Counter[str] = Counter()
        self._holders: dict[str, str] = {}  # consumer id -> client address

    @property
    def in_use(self) -> int:
        return sum(self._by_client.values())

    def acquire(self, client: str) -> None:
        """Take a slot or raise TooManyStreams (503 with Retry-After)."""
        if self.in_use >= self.total:
            raise TooManyStreams(f"the server has {self.total} streaming connections open; try again later")
        if self._by_client[client] >= self.per_client:
            raise TooManyStreams(f"{client} already has {self.per_client} streaming connections open")
        self._by_client[client] += 1

    @contextlib.contextmanager
    def held(self, client: str) -> Iterator[None]:
        """A slot for the duration of the block (a long-poll, the dashboard's statistics stream)."""
        self.acquire(client)
        try:
            yield
        finally:
            self.release(client)

    def bind(self, consumer_id: str, client: str) -> None:
        """Tie an acquired slot to the consumer that uses it."""
        self._holders[consumer_id] = client

    def release(self, client: str) -> None:
        self._by_client[client] -= 1
        if self._by_client[client] <= 0:
            del self._by_client[client]

    def release_holder(self, consumer_id: str) -> None:
        """Free the consumer's slot; a second call does nothing."""
        client = self._holders.pop(consumer_id, None)
        if client is not None:
            self.release(client)
