"""The Lua scripts in lua/ as one Valkey FUNCTION library, loaded once per engine and run with FCALL.

The library defines the shared prelude (_lib.lua) once, when the engine loads it; each script becomes one function
of it. (Run as EVALSHA scripts, every call defined the prelude's functions anew: about 25k instructions per add or
take.) The library is named after a hash of its code, `restmq_<hash>`, and so is each function
(`restmq_<hash>_add`): processes of two versions run side by side on one engine during a rolling upgrade, each
calling its own. A library stays on the engine (in its AOF) until someone removes it (FUNCTION DELETE): its code
is about 36 kB, plus what the engine compiled from it.

A call that finds no library (an engine that started empty, a new cluster primary) loads it, on every primary of
a cluster, and runs once more. Every engine we support has functions: the scripts use sharded pub/sub
(SPUBLISH), which came with FUNCTION in Redis 7.0.

With coalescing on (the default for single servers), the script calls that arrive in the same
event-loop tick are sent in one pipeline round trip. Each caller still gets its own reply or
error, only once the server has answered its own command; one process's requests then cost the
server (and redis-py) one round trip per tick instead of one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

Client = Redis | RedisCluster
Call = tuple[str, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]

LIBRARY_PREFIX = "restmq_"
# Scripts that only read: callable on a read-only replica (stats on a stale replica, as with EVALSHA before).
READ_ONLY = frozenset({"stats", "peek_recent", "history", "deadline", "index_state"})
# Scripts that run above maxmemory, where the engine refuses a function without this flag whole. As EVALSHA scripts
# these ran there too: the engine refuses a script's first write only if it is one that may grow memory, and each of
# these begins with a removal (takes, acks and purges are what frees memory). Adds and settings stay refused.
RUN_UNDER_OOM = frozenset(
    {"pop", "ack_lease", "settle", "delete", "purge", "reap", "broadcast", "assign", "redrive", "presence"}
)


def _lua(name: str) -> str:
    return (resources.files("restmq.storage") / "lua" / f"{name}.lua").read_text()


def names() -> list[str]:
    """Every script in lua/ (files starting with _ are preludes, not scripts)."""
    lua = resources.files("restmq.storage") / "lua"
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_"))


def _flags(name: str) -> str:
    if name in READ_ONLY:
        return "{'no-writes'}"
    return "{'allow-oom'}" if name in RUN_UNDER_OOM else "{}"


def _function(name: str) -> str:
    """One script as a function of the library: its keys and arguments bound to the prelude's names, then its
    body (NAME is replaced by the library's name)."""
    return (
        f"redis.register_function{{function_name = 'NAME_{name}', flags = {_flags(name)}, "
        f"callback = function(keys, args)\nbind(keys, args)\n{_lua(name)}end}}\n"
    )


@dataclass(frozen=True)
class Library:
    name: str
    code: str

    def function(self, script: str) -> str:
        return f"{self.name}_{script}"


@cache
def library() -> Library:
    """The scripts as one library, named after a hash of its code."""
    body = _lua("_lib") + "\n" + "".join(_function(name) for name in names())
    name = LIBRARY_PREFIX + hashlib.sha256(body.encode()).hexdigest()[:16]
    return Library(name, f"#!lua name={name}\n" + body.replace("'NAME_", f"'{name}_"))


def function_missing(reply: object) -> bool:
    """Whether `reply` is the engine's answer to an FCALL of a function it does not have."""
    return isinstance(reply, ResponseError) and str(reply).startswith("Function not found")


class Scripts:
    """The project's scripts as functions of one library on one client (loaded again where missing)."""

    def __init__(self, client: Client, *, coalesce: bool = False) -> None:
        self._client = client
        self._library = library()
        self._functions = {name: self._library.function(name) for name in names()}
        self._coalesce = coalesce and isinstance(client, Redis)
        # one server's client that retries nothing itself (connect()): a call goes to a pooled connection directly
        retry = client.get_retry() if isinstance(client, Redis) else None
        self._direct = (
            retry is not None and retry.get_retries() == 0 and not cast(Redis, client).single_connection_client
        )
        self._pending: list[Call] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._loading: asyncio.Future[None] | None = None

    async def load(self) -> None:
        """FUNCTION LOAD REPLACE of the library (on every primary of a cluster); concurrent callers share one."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        # a cluster client sends FUNCTION LOAD to every primary
        await self._client.function_load(self._library.code, replace=True)

    def _fcall(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("FCALL", self._functions[name], len(keys), *keys, *args)

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = self._fcall(name, keys, args)
        try:
            return await self._execute(command)
        except ResponseError as exc:
            if not function_missing(exc):
                raise
        await self.load()
        return await self._execute(command)

    async def _execute(self, command: tuple[Any, ...]) -> Any:
        """What Redis.execute_command does for one FCALL, without its retry wrapper (which would retry nothing)
        and its per-call metrics: the connection's send and read disconnect it on any error themselves."""
        if not self._direct:
            return await self._client.execute_command(*command)
        pool = cast(Redis, self._client).connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_command(*command)
            return await connection.read_response()
        finally:
            await pool.release(connection)

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if not self._coalesce:
            return await self._call(name, keys, args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((name, keys, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    async def run_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Several calls of one script, in order, in this tick's pipeline when coalescing: their
        replies, or the exception of each call that failed. Waits on futures, never on tasks."""
        if not self._coalesce:
            replies: list[Any] = []
            for keys, args in calls:
                try:
                    replies.append(await self._call(name, keys, args))
                except Exception as exc:
                    replies.append(exc)
            return replies
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in calls]
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending += [(name, keys, args, future) for (keys, args), future in zip(calls, futures, strict=True)]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def run_pipelined(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Several calls of one script in one pipeline (on a cluster, one per node, sent together), whatever the
        coalescing; their replies in order. The first call that failed raises; an engine without the library
        gets it."""
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # the cluster pipeline routes the command by its keys, which here always share one slot
                pipe.execute_command(*self._fcall(name, keys, args))
            replies = await pipe.execute(raise_on_error=False)
        for i, ((keys, args), reply) in enumerate(zip(calls, replies, strict=True)):
            if function_missing(reply):
                replies[i] = await self._call(name, keys, args)
            elif isinstance(reply, BaseException):
                raise reply
        return list(replies)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send(self, batch: list[Call]) -> None:
        if len(batch) == 1:  # nothing to coalesce: skip the pipeline's bookkeeping
            name, keys, args, future = batch[0]
            await self._settle(future, self._call(name, keys, args))
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for name, keys, args, _ in batch:
                    pipe.execute_command(*self._fcall(name, keys, args))
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller in the batch learns it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (name, keys, args, future), reply in zip(batch, replies, strict=True):
            if function_missing(reply):
                await self._settle(future, self._call(name, keys, args))
            elif isinstance(reply, BaseException):
                if not future.done():
                    future.set_exception(reply)
            elif not future.done():
                future.set_result(reply)

    @staticmethod
    async def _settle(future: asyncio.Future[Any], call: Any) -> None:
        try:
            result = await call
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
