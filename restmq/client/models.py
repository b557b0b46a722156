"""Plain values the client returns. They hold data only; talking to the server is the client's job."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STATS_FIELDS = ("queue", "length", "delayed", "leased", "dead", "consumers", "status", "policy", "max_deliveries")


@dataclass(frozen=True, slots=True)
class Message:
    """One delivered message.

    ``key`` is ``<queue>:<n>``; ``count`` is this delivery's number (1 on the first delivery; 0 when the
    server did not say, as on broadcast streams). ``lease`` is the lease in seconds when the message
    was leased (it stays queued until acked), else ``None`` (it is already gone from the queue).
    """

    queue: str
    key: str
    value: str
    count: int = 0
    lease: float | None = None

    @property
    def n(self) -> int:
        """The message number within its queue."""
        return int(self.key.rsplit(":", 1)[1])

    @property
    def leased(self) -> bool:
        return self.lease is not None

    def json(self) -> Any:
        """The value decoded as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.value)

    @classmethod
    def from_dict(cls, queue: str, data: dict[str, Any], lease: float | None = None) -> Message:
        count = data.get("count")
        return cls(
            queue=queue,
            key=str(data["key"]),
            value=str(data["value"]),
            count=count if isinstance(count, int) else 0,
            lease=lease,
        )


@dataclass(frozen=True, slots=True)
class Control:
    """Flow control of a queue: ``status`` is ``start`` or ``stop``; ``max_deliveries`` 0 means unlimited."""

    queue: str
    status: str
    max_deliveries: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """``GET /stats/<queue>``: sizes, settings and the queue's counters (added, delivered, acked, ...)."""

    queue: str
    length: int = 0
    delayed: int = 0
    leased: int = 0
    dead: int = 0
    consumers: int = 0
    status: str = "start"
    policy: str = "broadcast"
    max_deliveries: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueStats:
        counters = {k: v for k, v in data.items() if k not in STATS_FIELDS and isinstance(v, int)}
        return cls(
            queue=str(data.get("queue", "")),
            length=int(data.get("length", 0)),
            delayed=int(data.get("delayed", 0)),
            leased=int(data.get("leased", 0)),
            dead=int(data.get("dead", 0)),
            consumers=int(data.get("consumers", 0)),
            status=str(data.get("status", "start")),
            policy=str(data.get("policy", "broadcast")),
            max_deliveries=int(data.get("max_deliveries", 0)),
            counters=counters,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATS_FIELDS} | self.counters


@dataclass(frozen=True, slots=True)
class Overview:
    """``GET /stats/``: queues' statistics (every page, or one) and the backend nodes' states. ``next`` is the
    ``after`` of the page that follows, None when there is none."""

    queues: list[QueueStats]
    nodes: Any = None
    next: str | None = None


@dataclass(slots=True)
class ConsumeStats:
    """What a :meth:`Client.consume` run did: messages handled (acked), failed (released), and errors."""

    handled: int = 0
    failed: int = 0
    errors: int = 0  # transport/server errors while leasing or settling (the loop backed off and went on)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule (docs/schedules.md): its queue and value, ``cron`` (with ``tz``) or ``every`` seconds, and where
    its ticks stand (ms since the epoch, by the engine's clock; None before the first or while paused)."""

    id: str
    queue: str
    value: str
    cron: str | None
    every: int | None
    tz: str
    created_ms: int
    paused: bool
    fired: int
    last_tick_ms: int | None
    last_key: str | None
    next_tick_ms: int | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls(**{name: data.get(name) for name in cls.__slots__})  # type: ignore[arg-type]
