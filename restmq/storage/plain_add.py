"""A batch add of plain messages as plain commands in MULTI/EXEC, instead of add.lua.

add.lua builds its HSET and ZADD arguments message by message in Lua: about 16k engine instructions per message of
an add of 100, where the engine's own pipelined LPUSH costs under 4k. Here the client builds them and the engine runs
them in C. It covers exactly what add.lua does for a batch with priority 0, no delay, no ttl and no idempotency key
(every other add takes the script): the values into the messages hash, their ready-set scores, the `added` counter,
the `listed` flag, the operation record a retried call replays, and the wake-up SPUBLISH. The layout is add.lua's.

Two round trips, each one transaction on the queue's own keys (one hash slot):
1. reserve: start the numbering at this node's base (add.lua's init_seq) and take `count` message numbers and
   `count` ready-order positions;
2. write: the messages, counters, flag, record and wake-up, all or nothing.

What this gives up against the script (docs/performance.md, item 27): the reservation and the write are two steps,
so two adds running at the same time keep the order of their reservations, not of their writes. A consumer reading
between the two may take part of a later-reserved batch before an earlier-reserved one lands ahead of the rest of
it; each batch stays in order, and one client's adds, one after the other, keep theirs. A process that dies between
the steps leaves a gap in the numbering (harmless: nothing reads numbers as a count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from restmq.storage import keys

READY_TAIL = 9 * 2**45 + 2**44  # priority 0's band plus MID (lua/_lib.lua: BAND, MID): tail inserts count up from it
OPS_TTL_MS = 75_000  # as _lib.lua's OPS_TTL_MS


Command = tuple[object, ...]


def reserve_commands(qk: keys.QueueKeys, count: int, key_base: int) -> list[Command]:
    """Take `count` message numbers and ready positions (replies: ..., the last number, the last position)."""
    return [
        # add.lua's init_seq: a queue's numbering starts at this node's base (ring mode), remembered for dead letters
        ("HSETNX", qk.meta, "base", key_base),
        ("HSETNX", qk.meta, "seq", key_base),
        ("HINCRBY", qk.meta, "seq", count),
        ("HINCRBY", qk.meta, "order", count),
    ]


def write_commands(
    qk: keys.QueueKeys, values: Sequence[str], first: int, order: int, operation: tuple[str, str]
) -> list[Command]:
    """Write a reserved batch with its operation record (replies: the fourth says whether the queue is newly listed)."""
    count = len(values)
    fields: list[object] = []
    scores: list[object] = []
    for i, value in enumerate(values):
        fields += (first + i, value)
        scores += (READY_TAIL + order + i + 1, first + i)
    ops_key, op_id = operation
    # the reply add.lua would give, for its replay after a dropped reply (always 'listed': listing again is harmless)
    record = msgspec.msgpack.encode([first, first + count - 1, 1, -1, 0])
    return [
        ("HSET", qk.msgs, *fields),
        ("ZADD", qk.ready, *scores),
        ("HINCRBY", qk.meta, "added", count),
        ("HSETNX", qk.meta, "listed", 1),
        ("HSET", ops_key, op_id, record),
        ("PEXPIRE", ops_key, OPS_TTL_MS, "NX"),
        ("SPUBLISH", qk.channel, f"add:{count}"),
    ]


async def _transaction(client: Redis, commands: Sequence[Command]) -> list[Any]:
    """EXEC's replies to `commands` in MULTI/EXEC, sent on a pooled connection as one write. Not redis-py's
    transaction pipeline, which costs this process about 6x a script call per batch (its bookkeeping, a timer per
    reply). Each read is bounded by the socket timeout (read_sweep.py) and drops the connection if it fails."""
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(connection.pack_commands([("MULTI",), *commands, ("EXEC",)]))
        refused: ResponseError | None = None
        # +OK, QUEUED or the refusal of each command, then EXEC's replies (or EXECABORT after a refusal)
        for _ in range(len(commands) + 2):
            try:
                replies = await connection.read_response()
            except ResponseError as exc:
                refused = refused or exc
    finally:
        await pool.release(connection)
    if refused is not None:  # nothing ran; the first refusal says why (OOM, READONLY...)
        raise refused
    for reply in replies:  # a command that failed as it ran (a key of the wrong type): an unexpected error
        if isinstance(reply, ResponseError):
            raise reply
    return list(replies)


async def reserve(client: Redis, qk: keys.QueueKeys, count: int, key_base: int) -> tuple[int, int]:
    """Reserve a batch: its first message number, and the last ready position before it."""
    *_, last, order = await _transaction(client, reserve_commands(qk, count, key_base))
    return int(cast(int, last)) - count + 1, int(cast(int, order)) - count


async def write(
    client: Redis, qk: keys.QueueKeys, values: Sequence[str], first: int, order: int, operation: tuple[str, str]
) -> bool:
    """Write a reserved batch, all or nothing; whether the queue is newly listed."""
    replies = await _transaction(client, write_commands(qk, values, first, order, operation))
    return bool(replies[3])
