"""Schedules through the Python clients (sync and async) and the `restmq schedule` commands (issue 19)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from restmq.client import AsyncClient, Client
from restmq.client.errors import BadRequestError, NotFoundError
from tests.helpers.auth import restmq_cli
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.integration


async def test_async_client_manages_schedules(server: str) -> None:
    async with AsyncClient(server) as client:
        created = await client.create_schedule("aq", "{{tick_ms}}", every=1)
        assert created.every == 1 and created.cron is None and not created.paused

        async def fired() -> bool:
            return (await client.schedule(created.id)).fired >= 1

        await wait_for(fired, 20, 0.05, "a tick")
        assert [s.id for s in await client.schedules()] == [created.id]
        assert (await client.pause_schedule(created.id)).paused
        assert not (await client.resume_schedule(created.id)).paused
        message = await client.take("aq")
        assert message is not None and int(message.value) > created.created_ms
        assert await client.delete_schedule(created.id) is True
        with pytest.raises(NotFoundError):
            await client.schedule(created.id)
        with pytest.raises(BadRequestError) as refused:
            await client.create_schedule("aq", "x", cron="not a cron")
        assert refused.value.code == "PARAMETER_INVALID"
        with pytest.raises(BadRequestError):
            await client.schedule("../q/aq")  # refused before it reaches a URL
        with pytest.raises(ValueError):
            await client.create_schedule("aq", "x")


async def test_sync_client_manages_schedules(server: str) -> None:
    def use() -> None:
        with Client(server) as client:
            created = client.create_schedule("sq", "x", cron="30 6 * * 1-5", tz="Europe/Berlin")
            assert created.tz == "Europe/Berlin" and created.next_tick_ms is not None
            assert client.pause_schedule(created.id).next_tick_ms is None
            assert [s.queue for s in client.schedules()] == ["sq"]
            assert client.delete_schedule(created.id)
            assert client.schedules() == []

    await asyncio.to_thread(use)  # the server runs in this event loop


async def test_cli_schedule_commands(server: str) -> None:
    async def cli(*args: str) -> str:
        done = await asyncio.to_thread(restmq_cli, "schedule", *args, "--url", server)
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = json.loads(await cli("add", "cq", "beat {{tick}}", "--every", "60", "--json"))
    assert created["queue"] == "cq" and created["every"] == 60
    listed = await cli("list")
    assert created["id"] in listed and "every 60s" in listed and "never fired" in listed
    assert "paused" in await cli("pause", created["id"])
    assert "next " in await cli("resume", created["id"])
    assert created["id"] in await cli("show", created["id"])
    assert "removed" in await cli("remove", created["id"])
    assert await cli("list") == ""

    refused = await asyncio.to_thread(restmq_cli, "schedule", "add", "cq", "x", "--cron", "* *", "--url", server)
    assert refused.returncode != 0 and "PARAMETER_INVALID" in refused.stderr + refused.stdout
    missing = await asyncio.to_thread(restmq_cli, "schedule", "show", "s_0123456789abcdef", "--url", server)
    assert missing.returncode != 0


async def test_the_schedules_example_runs(server: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "schedules.py"
    env = {**os.environ, "RESTMQ_URL": server}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(example)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    beats = [line for line in done.stdout.splitlines() if line.startswith("beat ")]
    assert len(beats) == 3 and len(set(beats)) == 3, done.stdout
    async with AsyncClient(server) as client:
        assert await client.schedules() == []  # the example removed what it created
