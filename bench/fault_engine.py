"""Faults of the embedded engine of one `restmq serve`, under a steady load: kill -9, SIGSTOP, a full disk.

Each scenario starts its own server on its own data dir, runs the load for a while, injects the fault, measures
until service is back (or the scenario's limit), keeps the load a little longer, then drains the queue and
accounts for every acknowledged add.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from common import Server
from fault_common import Context, Row, duplicated_text, lost_text, recovery, seconds, statuses
from fault_load import LEASE, Ledger, drain
from fault_procs import alive, can_mount, engine_pid, fill, mount_tmpfs, stopped

DRAIN_TIMEOUT = LEASE + 30


@dataclass
class Window:
    """When the fault began, when it was lifted (the fault is over from here), and the recovery from there."""

    start: float
    lifted: float
    back: float | None  # seconds after `lifted`


async def engine_kill(ctx: Context) -> Row:
    async def inject(server: Server, data: Path) -> Window:
        pid = engine_pid(data)
        start = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        back = await recovery(server.url(""), start, ctx.limit)
        return Window(start, start, back)

    return await _engine_scenario(ctx, "engine kill", "kill -9 of the embedded engine", "engine-kill", inject)


async def engine_freeze(ctx: Context) -> Row:
    async def inject(server: Server, data: Path) -> Window:
        pid = engine_pid(data)
        start = time.monotonic()
        with stopped(pid):
            await asyncio.sleep(ctx.freeze)  # the length of the fault itself
        lifted = time.monotonic()
        return Window(start, lifted, await recovery(server.url(""), lifted, ctx.limit))

    deadline = ctx.serve.backend_timeout
    fault = f"SIGSTOP of the engine for {ctx.freeze:g} s, then SIGCONT"
    fault += f" (--backend-timeout {deadline:g})" if deadline is not None else " (no --backend-timeout option)"
    return await _engine_scenario(ctx, "engine freeze", fault, "engine-freeze", inject, ctx.freeze + 60)


async def disk_full(ctx: Context) -> Row:
    why_not = can_mount()
    if why_not is not None:
        return Row("disk full", "data dir on a full tmpfs", "not run", "", "", "", "", f"not run: {why_not}")
    disk = ctx.tmp / "disk"
    mount_tmpfs(ctx.stack, disk, 64)

    async def inject(server: Server, data: Path) -> Window:
        filler = disk / "filler"
        start = time.monotonic()
        await asyncio.to_thread(fill, filler)
        await asyncio.sleep(ctx.disk_full)  # the length of the fault itself
        filler.unlink()
        lifted = time.monotonic()
        return Window(start, lifted, await recovery(server.url(""), lifted, ctx.limit))

    fault = f"data dir on a 64 MB tmpfs, filled for {ctx.disk_full:g} s, then freed"
    return await _engine_scenario(ctx, "disk full", fault, "disk/data", inject)


async def _engine_scenario(
    ctx: Context,
    name: str,
    fault: str,
    data_name: str,
    inject: Callable[[Server, Path], Awaitable[Window]],
    request_timeout: float = 30.0,
) -> Row:
    data = ctx.tmp / data_name
    tag = data_name.replace("/", "-")
    server = ctx.serve.start(ctx.stack, tag, ctx.tmp, "--data-dir", str(data))
    queue = f"faults-{tag}"
    load = ctx.load([server.url("")], queue, request_timeout)
    load.start()
    began = time.monotonic()
    await asyncio.sleep(ctx.warmup)  # steady load before the fault
    dead_engine = engine_pid(data)
    window = await inject(server, data)
    notes = [f"{load.ledger.rate('add', began, window.start):.0f} adds/s answered 200 before the fault"]
    if window.back is not None:
        await asyncio.sleep(ctx.after)  # steady load after recovery
    await load.finish(grace=10)
    zombie = not alive(dead_engine) and os.path.exists(f"/proc/{dead_engine}")
    if zombie:
        notes.append(f"the killed engine (pid {dead_engine}) was left a zombie")
    if window.back is None:  # what an operator would do: restart the server, then count what survived
        server.stop()
        server = ctx.serve.start(ctx.stack, f"{tag}-restarted", ctx.tmp, "--data-dir", str(data))
        notes.append("counted after restarting `restmq serve` by hand")
    drained = await drain(load.ledger, server.url(""), queue, DRAIN_TIMEOUT)
    end = window.lifted + (window.back if window.back is not None else ctx.limit)
    return _row(name, fault, load.ledger, window, end, ctx.limit, drained, notes)


def _row(
    name: str, fault: str, ledger: Ledger, window: Window, end: float, limit: float, drained: bool, notes: list[str]
) -> Row:
    acc = ledger.account()
    after = " after the fault was lifted" if window.lifted > window.start else ""
    return Row(
        scenario=name,
        fault=fault,
        answers=statuses(ledger.statuses(window.start, end))
        + f"; {ledger.reconnections(window.start, end)} connections closed by the server",
        worst=f"{ledger.max_latency(window.start, end):.2f} s",
        recovery=seconds(window.back, limit, after),
        lost=lost_text(acc, drained),
        duplicated=duplicated_text(acc),
        notes="; ".join(notes),
    )
