"""Every key name RestMQ stores, in one place.

All keys of a queue share the hash tag ``{<queue>}``, so every queue operation runs
atomically on one node in every backend mode (single node, ring, Redis Cluster).
A dead-letter queue ``<queue>:dead`` shares the tag of ``<queue>`` (its keys carry a
``|dead`` marker instead) so that dead-lettering and redrive stay single-slot too.
``|`` cannot occur in a queue name, so the two layouts never collide.

Keyspace (``T`` = hash tag, ``N`` = ``""`` or ``"|dead"``):

=======================  ======  ============================================================
key                      type    holds
=======================  ======  ============================================================
rmq:{T}N:meta            HASH    seq (last key number), order, head (ordering counters),
                                 policy, status, max_deliveries, listed, added, delivered,
                                 acked, expired, dead (counters)
rmq:{T}N:msgs            HASH    n -> message value
rmq:{T}N:ready           ZSET    n -> score: priority band, then insertion order
rmq:{T}N:delayed         ZSET    n -> due time (ms, server clock)
rmq:{T}N:leased          ZSET    n -> lease deadline (ms)
rmq:{T}N:counts          HASH    n -> deliveries so far
rmq:{T}N:prio            HASH    n -> priority (only when > 0)
rmq:{T}N:expires         ZSET    n -> ttl deadline (ms; only messages added with ttl)
rmq:{T}N:origin          HASH    n -> JSON history of a dead letter (dead queues only)
rmq:{T}N:groups          HASH    message groups (lua/_lib.lua): n -> "<order> <group id>" for each grouped message,
                                 "=<group id>" -> n of the group's head (the one ready, delayed or in flight);
                                 derived from the meta key inside the scripts (same slot), not passed in KEYS
rmq:{T}N:parked          ZSET    "<group id> <n, 20 digits>", all scored 0: a group's messages waiting behind its
                                 head, in order (ZRANGEBYLEX)
rmq:{T}N:history         LIST    recent broadcast deliveries, newest first (SSE resume)
rmq:{T}N:consumers       ZSET    streaming consumer id ("<process>/<conn>/<lease ms>") -> presence
                                 deadline (ms): its process's last heartbeat + the presence ttl
rmq:{T}N:idem:<sha256>   STRING  key of the first add with that Idempotency-Key (PX window)
rmq:{T}N:ops:<window>    HASH    operation id -> reply of one state-changing script call, msgpack,
                                 for the calls of one 30 s window (unix time // 30; PEXPIRE 75 s from
                                 its first record): a retried call with the same operation id
                                 replays it, changing nothing
rmq:{T}N:op:<id>         STRING  the same for one call, in versions before the window hashes (PX 30 s:
                                 expires by itself)
rmq:{T}N:ev              (pub/sub shard channel) queue events: add:N, add, settings, purge,
                                 b[...] and r[...] deliveries, sync: echoes (docs/ARCHITECTURE.md)
rmq:names                ZSET    names of listed queues, all scored 0: ordered by name, so that a
                                 listing page is one ZRANGEBYLEX (one per node on a ring); an index
                                 of the meta hashes' `listed` flags (storage/index_repair.py)
rmq:queues               SET     the registry of versions before rmq:names; folded into it, then deleted
rmq:timers               ZSET    queue name -> next lease/delay/ttl deadline (reaper index)
rmq:tokens               HASH    token id -> JSON token record (secret stored as SHA-256)
rmq:tokens:revoked       HASH    token id -> revocation time (unix s); a revoked id never
                                 authorizes again, even if a ring node still holds its record
=======================  ======  ============================================================
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

PREFIX = "rmq"
DEAD_SUFFIX = ":dead"
QUEUES = f"{PREFIX}:names"
LEGACY_QUEUES = f"{PREFIX}:queues"
TIMERS = f"{PREFIX}:timers"
REAPER_LOCK = f"{PREFIX}:reaper"
TOKENS = f"{PREFIX}:tokens"
REVOKED_TOKENS = f"{TOKENS}:revoked"
META_PATTERN = f"{PREFIX}:{{*:meta"  # SCAN MATCH of every queue's meta hash, dead-letter queues' included
_META_TAIL, _DEAD_META_TAIL = "}:meta", "}|dead:meta"


def is_dead_letter_queue(queue: str) -> bool:
    return queue.endswith(DEAD_SUFFIX) and len(queue) > len(DEAD_SUFFIX)


def dead_letter_queue(queue: str) -> str:
    return queue + DEAD_SUFFIX


def hash_tag(queue: str) -> str:
    """The hash tag (and ring key) of a queue: its own name, or its parent's for a dead-letter queue."""
    return queue[: -len(DEAD_SUFFIX)] if is_dead_letter_queue(queue) else queue


def queue_of_meta(key: str) -> str | None:
    """The queue whose meta hash `key` is, or None when `key` is not one (a name holds no `{`, `}` or `|`)."""
    head = f"{PREFIX}:{{"
    if not key.startswith(head):
        return None
    if key.endswith(_DEAD_META_TAIL):
        parent = key[len(head) : -len(_DEAD_META_TAIL)]
        queue = dead_letter_queue(parent)
    elif key.endswith(_META_TAIL):
        parent = queue = key[len(head) : -len(_META_TAIL)]
    else:
        return None
    if not parent or any(c in parent for c in "{}|"):
        return None
    return queue


def _base(queue: str) -> str:
    if is_dead_letter_queue(queue):
        return f"{PREFIX}:{{{hash_tag(queue)}}}|dead"
    return f"{PREFIX}:{{{queue}}}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    queue: str
    meta: str
    msgs: str
    ready: str
    delayed: str
    leased: str
    counts: str
    prio: str
    expires: str
    origin: str
    groups: str
    parked: str
    history: str
    consumers: str
    channel: str

    def idempotency(self, idem_key: str) -> str:
        digest = hashlib.sha256(idem_key.encode()).hexdigest()
        return f"{_base(self.queue)}:idem:{digest}"

    def operations(self, window: int) -> str:
        """The hash where the script calls of one time window remember their replies under their operation ids
        (beside the meta key: same slot)."""
        return f"{self.meta[:-4]}ops:{window}"

    @property
    def message_keys(self) -> tuple[str, ...]:
        """The keys a message operation script takes as KEYS[1..9], in this order."""
        return (
            self.meta,
            self.msgs,
            self.ready,
            self.delayed,
            self.leased,
            self.counts,
            self.prio,
            self.expires,
            self.origin,
        )


def stats_keys(queue: str) -> list[str]:
    """The keys the stats script counts (meta, ready, delayed, leased, consumers: as queue_keys names them), and,
    for a queue that is not itself a dead-letter queue, the ready key of its dead-letter queue. Built directly:
    a walk over every queue (the metrics' totals) would otherwise churn queue_keys' cache."""
    base = _base(queue)
    counted = [f"{base}:meta", f"{base}:ready", f"{base}:delayed", f"{base}:leased", f"{base}:consumers"]
    if not is_dead_letter_queue(queue):
        counted.append(f"{_base(dead_letter_queue(queue))}:ready")
    return counted


@functools.lru_cache(maxsize=8192)  # a hot path: every operation needs them
def queue_keys(queue: str) -> QueueKeys:
    base = _base(queue)
    return QueueKeys(
        queue=queue,
        meta=f"{base}:meta",
        msgs=f"{base}:msgs",
        ready=f"{base}:ready",
        delayed=f"{base}:delayed",
        leased=f"{base}:leased",
        counts=f"{base}:counts",
        prio=f"{base}:prio",
        expires=f"{base}:expires",
        origin=f"{base}:origin",
        groups=f"{base}:groups",
        parked=f"{base}:parked",
        history=f"{base}:history",
        consumers=f"{base}:consumers",
        channel=f"{base}:ev",
    )


def uncached_queue_keys(queue: str) -> QueueKeys:
    """queue_keys without its cache: for walks over every queue, which would evict the hot queues' entries."""
    return queue_keys.__wrapped__(queue)
