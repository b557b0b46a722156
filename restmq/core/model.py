"""The values the queue core passes around: messages, settings and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Policy(StrEnum):
    BROADCAST = "broadcast"
    ROUNDROBIN = "roundrobin"


class FlowStatus(StrEnum):
    START = "start"
    STOP = "stop"


class PopMode(StrEnum):
    TAKE = "take"  # destructive: the message is gone once delivered
    LEASE = "lease"  # hidden until acked, released or the lease expires
    PEEK = "peek"  # the original soft get: stays at the head, its count rises


class SettleAction(StrEnum):
    ACK = "ack"
    RELEASE = "release"
    EXTEND = "extend"


class SettleOutcome(StrEnum):
    OK = "ok"
    MISSING = "missing"  # no such message (acked, deleted, expired or never added)
    NOT_LEASED = "not_leased"  # the message exists but is not leased now (its lease expired)
    STALE = "stale"  # the message was delivered again since the caller's delivery


@dataclass(frozen=True, slots=True)
class Message:
    queue: str
    n: int
    value: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.queue}:{self.n}"


@dataclass(frozen=True, slots=True)
class AddResult:
    first: int
    last: int
    duplicate: bool = False  # an Idempotency-Key retry: nothing was added

    def keys(self, queue: str) -> list[str]:
        return [f"{queue}:{n}" for n in range(self.first, self.last + 1)]


@dataclass(frozen=True, slots=True)
class SettleResult:
    outcome: SettleOutcome
    count: int


@dataclass(frozen=True, slots=True)
class PopResult:
    stopped: bool
    messages: list[Message] = field(default_factory=list)
    acked: list[SettleResult] = field(default_factory=list)  # the outcome of each ack a lease carried, in order


@dataclass(frozen=True, slots=True)
class QueueSettings:
    policy: Policy = Policy.BROADCAST
    status: FlowStatus = FlowStatus.START
    max_deliveries: int = 0
    # Whether the policy and status were ever set, rather than left at their defaults (the 2010 replies say
    # "unknown" and null for such a queue); not part of a setting's value, so equality ignores them.
    policy_set: bool = field(default=False, compare=False)
    status_set: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    length: int  # ready to deliver now
    delayed: int
    leased: int
    dead: int  # waiting in <queue>:dead
    consumers: int  # streaming consumers, all server processes
    settings: QueueSettings
    counters: dict[str, int]  # added, delivered, acked, redelivered, expired, dead_lettered

    def to_dict(self) -> dict[str, object]:
        return {
            "queue": self.queue,
            "length": self.length,
            "delayed": self.delayed,
            "leased": self.leased,
            "dead": self.dead,
            "consumers": self.consumers,
            "status": self.settings.status.value,
            "policy": self.settings.policy.value,
            "max_deliveries": self.settings.max_deliveries,
            **self.counters,
        }


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of a listing in name order. `next` is what to pass as `after` for the following page, or None
    on the last one. A page may hold fewer names than asked for (even none) while `next` is set."""

    queues: list[str]
    next: str | None


class StreamStatus(StrEnum):
    OK = "ok"
    STOPPED = "stop"
    POLICY = "policy"  # the queue's policy is not the one the caller dispatches for
    NO_CONSUMERS = "none"


@dataclass(frozen=True, slots=True)
class StreamResult:
    status: StreamStatus
    count: int  # messages taken or assigned (and published to every server process)


class Hold(NamedTuple):
    """A roundrobin message a process holds in flight, as its heartbeat renews it."""

    n: int
    deliveries: int  # its delivery count when assigned: a later delivery is someone else's
    hold_ms: int  # how long from now to keep it (within what is left of its in-flight bound or lease)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    key: str
    value: str
    count: int
    at_ms: int  # when it was broadcast (server clock)
    size: int = 0  # bytes it takes in the backend's history (what a replay's byte limit counts there)


@dataclass(frozen=True, slots=True)
class History:
    """Broadcast history read for an SSE replay: the entries, newest first, and when the entry the
    replay resumes after was broadcast, if the read reached it (None: messages may have been missed)."""

    entries: list[HistoryEntry]
    since_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Recent:
    """The newest waiting messages of a queue, newest first; `truncated` when older ones were left out
    to stay within a byte limit."""

    messages: list[Message]
    truncated: bool = False
