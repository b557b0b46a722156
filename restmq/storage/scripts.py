"""Loads the Lua scripts in lua/ once and runs them by SHA, loading them again after NOSCRIPT.

With coalescing on (the default for single servers), the script calls that arrive in the same
event-loop tick are sent in one pipeline round trip. Each caller still gets its own reply or
error, only once the server has answered its own command; one process's requests then cost the
server (and redis-py) one round trip per tick instead of one per request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Client = Redis | RedisCluster
Call = tuple[str, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]


# A prelude function with the comment above it: up to the `end` that closes it at the start of a line.
_FUNCTION = re.compile(r"^(?:--[^\n]*\n)*local function (\w+)\(.*?^end\n", re.MULTILINE | re.DOTALL)


@cache
def _prelude() -> tuple[str, dict[str, str]]:
    """The prelude's shared constants, and its functions by name (in their order)."""
    text = (resources.files("restmq.storage") / "lua" / "_lib.lua").read_text()
    constants = re.sub(r"\n{3,}", "\n\n", _FUNCTION.sub("", text))
    return constants, {m.group(1): m.group(0) for m in _FUNCTION.finditer(text)}


def _called(text: str, functions: dict[str, str]) -> set[str]:
    """The prelude functions `text` calls, and those they call in turn."""
    found: set[str] = set()
    todo = [text]
    while todo:
        code = todo.pop()
        for name, body in functions.items():
            if name not in found and re.search(rf"\b{name}\(", code):
                found.add(name)
                todo.append(body)
    return found


@cache
def source(name: str) -> str:
    """A script with the part of the prelude it uses: each call of a script defines every function of its
    prelude anew (a closure each), so the ones it never calls would cost every call for nothing."""
    script = (resources.files("restmq.storage") / "lua" / f"{name}.lua").read_text()
    constants, functions = _prelude()
    called = _called(script, functions)
    used = "".join(body + "\n" for fname, body in functions.items() if fname in called)
    return constants + "\n" + used + script


def names() -> list[str]:
    """Every script in lua/ (files starting with _ are preludes, not scripts)."""
    lua = resources.files("restmq.storage") / "lua"
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_"))


class Scripts:
    """The project's scripts registered on one client (redis-py handles NOSCRIPT reloads)."""

    def __init__(self, client: Client, *, coalesce: bool = False) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {name: client.register_script(source(name)) for name in names()}
        self._coalesce = coalesce and isinstance(client, Redis)
        self._pending: list[Call] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        if client is not None or not self._coalesce:
            return await self._scripts[name](keys=keys, args=args, client=client)
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
                    replies.append(await self._scripts[name](keys=keys, args=args))
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
        coalescing; their replies in order. The first call that failed raises; a server that lost its script
        cache gets the script again."""
        script = self._scripts[name]
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # not pipe.evalsha(): the cluster pipeline refuses that method (a script could span slots), but
                # routes the command by its keys, which here always share one slot
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        for i, ((keys, args), reply) in enumerate(zip(calls, replies, strict=True)):
            if isinstance(reply, NoScriptError):
                replies[i] = await script(keys=keys, args=args)
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
            await self._settle(future, self._scripts[name](keys=keys, args=args))
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for name, keys, args, _ in batch:
                    pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller in the batch learns it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (name, keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                await self._settle(future, self._scripts[name](keys=keys, args=args))
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
