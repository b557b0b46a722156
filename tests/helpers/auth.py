"""Access-control helpers for tests: acl.conf files, credentials, the token CLI, WebSocket outcomes."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SHIPPED_2010 = Path(__file__).resolve().parents[1] / "fixtures" / "acl-2010.conf"  # RestMQ 2010's, byte for byte


def uncommented_2010(directory: Path) -> Path:
    """The shipped 2010 example with its rule lines switched on (the leading # removed), nothing else changed."""
    text = re.sub(r"(?m)^#(hosts_allow|hosts_deny|username|password) =", r"\1 =", SHIPPED_2010.read_text())
    path = directory / "acl.conf"
    path.write_text(text)
    return path


def write_acl(directory: Path, text: str, name: str = "acl.conf") -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def restmq_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m restmq <args>` in a subprocess; its result (check the return code yourself)."""
    return subprocess.run(
        [sys.executable, "-m", "restmq", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=_cli_env(),
    )


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTMQ_")}
    env["COLUMNS"] = "250"  # rich tables: never wrap or truncate a column
    return env


def create_token(redis_url: str, queues: str, rights: str, *extra: str) -> str:
    """`restmq token create --redis <url> ...`; the token is the first line of stdout."""
    result = restmq_cli("token", "create", "--redis", redis_url, "--queues", queues, "--rights", rights, *extra)
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[0].strip()
    assert token.startswith("rmq_"), result.stdout
    return token


async def create_token_async(redis_url: str, queues: str, rights: str, *extra: str) -> str:
    return await asyncio.to_thread(create_token, redis_url, queues, rights, *extra)


def token_id(token: str) -> str:
    return token.removeprefix("rmq_").partition("_")[0]


@dataclass
class WSOutcome:
    """What one WebSocket connection saw: the frames it got, and how it was closed."""

    frames: list[Any]
    close_code: int | None
    close_reason: str | None


async def ws_session(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    send: Sequence[str | bytes] = (),
    expect_frames: int = 0,
    timeout: float = 10.0,
    max_size: int | None = None,
) -> WSOutcome:
    """Connect, send `send`, read until `expect_frames` frames arrived or the server closed, then close."""
    frames: list[Any] = []
    code = reason = None
    async with asyncio.timeout(timeout):
        async with connect(url, additional_headers=dict(headers or {}), open_timeout=timeout, max_size=max_size) as ws:
            try:
                for item in send:
                    await ws.send(item)
                while len(frames) < expect_frames or expect_frames == 0:
                    frames.append(orjson.loads(await ws.recv()))
            except ConnectionClosed:
                pass
            if len(frames) >= expect_frames > 0:
                await ws.close()
            code, reason = ws.close_code, ws.close_reason
    return WSOutcome(frames, code, reason)
