"""A private network namespace for tests that bind `::` or `0.0.0.0`: `unshare -n` with only the
loopback interface up, so nothing a test starts is reachable from outside (needs root, as in CI)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_isolated(
    argv: Sequence[str], *, bindv6only: bool | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (from the repository root) in a new network namespace with `lo` up; with
    `bindv6only` set, the namespace's net.ipv6.bindv6only sysctl is set first."""
    setup = "ip link set lo up"
    if bindv6only is not None:
        setup += f" && echo {int(bindv6only)} > /proc/sys/net/ipv6/bindv6only"
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", setup + ' && exec "$@"', "sh", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def run_python_isolated(
    module: str, *args: str, bindv6only: bool | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`python -m module args...` in a private network namespace (see run_isolated)."""
    return run_isolated([sys.executable, "-m", module, *args], bindv6only=bindv6only, timeout=timeout)
