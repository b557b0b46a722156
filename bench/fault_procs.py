"""Processes and faults for bench/faults.py: `restmq serve`, its engine, signals, a tmpfs that runs full.

Every process and mount is registered on the caller's ExitStack, so that a failure or Ctrl-C undoes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import Server, process_tree, start_server

ROOT = Path(__file__).resolve().parent.parent


class Serve:
    """Options every `restmq serve` of the run shares: the HTTP server, and --backend-timeout when it exists."""

    def __init__(self, server: str, backend_timeout: float | None) -> None:
        self.server = server
        self.backend_timeout, self.backend_timeout_given = None, backend_timeout is not None
        option = backend_timeout_option()
        if option is not None:  # None: this restmq has no such option; measure without
            self.backend_timeout = backend_timeout if backend_timeout is not None else option

    def args(self, *backend: str) -> list[str]:
        extra = ["--backend-timeout", f"{self.backend_timeout:g}"] if self.backend_timeout_given else []
        return ["-m", "restmq", "serve", *backend, "--log-level", "warning", "--server", self.server, *extra]

    def start(self, stack: contextlib.ExitStack, name: str, tmp: Path, *backend: str) -> Server:
        server = start_server(stack, name, self.args(*backend), tmp, "/ready", 0)
        wait_ready(server, 30)
        return server


def backend_timeout_option() -> float | None:
    """The default of `restmq serve --backend-timeout` (0.0 when it shows none), or None without that option."""
    help_text = subprocess.run(
        [sys.executable, "-m", "restmq", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    ).stdout
    start = help_text.find("--backend-timeout")
    if start < 0:
        return None
    end = help_text.find("\n  -", start)  # the next option
    default = re.search(r"default:\s*([0-9.]+)", help_text[start : end if end > 0 else None])
    return float(default.group(1)) if default else 0.0


def wait_ready(server: Server, timeout: float) -> None:
    """Until /ready answers 200; a harness error (RuntimeError) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url("/ready"), timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} was not ready within {timeout:g} s")


def engine_pid(data_dir: Path, timeout: float = 10) -> int:
    """The embedded engine's pid, from the pid file it writes in its data dir."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            pid = int((data_dir / "valkey.pid").read_text().strip())
            if alive(pid):
                return pid
        time.sleep(0.05)
    raise RuntimeError(f"no live engine pid in {data_dir}/valkey.pid")


def alive(pid: int) -> bool:
    """Running (a zombie is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and its descendants (granian serves from worker processes); returns their pids."""
    victims = process_tree(pid)
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims


def wait_dead(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} still alive {timeout:g} s after SIGKILL")
        time.sleep(0.01)


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP `pid` for the block; SIGCONT on the way out whatever happens (a stopped engine would ignore the
    SIGTERM of the clean-up)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def mount_tmpfs(stack: contextlib.ExitStack, where: Path, megabytes: int) -> None:
    """A small tmpfs at `where`, unmounted on the way out (after the processes using it, registered later, stop)."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(where)], check=True)
    stack.callback(unmount, where)


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)  # busy: detach it


def can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "needs root (to mount a tmpfs)"
    if subprocess.run(["which", "mount"], capture_output=True, check=False).returncode != 0:
        return "needs mount (util-linux)"
    return None


def fill(path: Path) -> int:
    """Write `path` until the file system is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += out.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written
