"""Loads the Lua scripts in lua/ once and runs them by SHA, loading them again after NOSCRIPT."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

Client = Redis | RedisCluster


@cache
def source(name: str) -> str:
    lua = resources.files("restmq.storage") / "lua"
    prelude = (lua / "_lib.lua").read_text()
    return prelude + "\n" + (lua / f"{name}.lua").read_text()


def names() -> list[str]:
    """Every script in lua/ (files starting with _ are preludes, not scripts)."""
    lua = resources.files("restmq.storage") / "lua"
    return sorted(p.name[:-4] for p in lua.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_"))


class Scripts:
    """The project's scripts registered on one client (redis-py handles NOSCRIPT reloads)."""

    def __init__(self, client: Client) -> None:
        self._scripts: dict[str, AsyncScript] = {name: client.register_script(source(name)) for name in names()}

    async def run(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return await self._scripts[name](keys=keys, args=args, client=client)
