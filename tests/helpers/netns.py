"""A private network namespace with only loopback up, for servers that must bind 0.0.0.0 or ::.

A server bound to every address inside it is reachable from inside it only, so a test that checks
what `restmq serve --host 0.0.0.0` does never exposes anything on the machine's real interfaces.
The namespace lives as long as a sleeping holder process (`unshare --net`); commands enter it with
`nsenter`. Both need root, as in CI. Clients run inside it too: `request` is a small Python process
there (urllib), and `NetNamespace.serve` starts `restmq serve` inside it. `run_isolated` runs a
whole command in a namespace of its own, for a test that needs no more than that.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.helpers.server import ServeProcess, free_port

REPO = Path(__file__).resolve().parents[2]

# One request from inside the namespace; prints the status (0 when nothing answered).
_CLIENT = """
import json, sys, urllib.error, urllib.request
method, url, headers = json.loads(sys.argv[1])
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=10) as r:
        print(r.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print(0)
"""


class NetNamespace:
    def __init__(self) -> None:
        self._holder = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep infinity"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "up":
            self.close()
            raise RuntimeError("could not make a network namespace (unshare --net and ip need root)")

    def command(self, argv: Sequence[str] = ()) -> list[str]:
        """`argv` run inside the namespace."""
        return ["nsenter", f"--net=/proc/{self._holder.pid}/ns/net", "--", *argv]

    def request(self, url: str, method: str = "GET", headers: Mapping[str, str] | None = None) -> int:
        """The HTTP status a client inside the namespace gets (0: no answer)."""
        spec = json.dumps([method, url, dict(headers or {})])
        result = subprocess.run(
            self.command([sys.executable, "-c", _CLIENT, spec]), capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip())

    def serve(self, args: Sequence[str], tmp_path: Path, name: str = "serve") -> ServeProcess:
        """`restmq serve ARGS` inside the namespace (not waited for: call wait_ready or start_outcome)."""
        return ServeProcess(
            args,
            free_port(),
            tmp_path / f"{name}.log",
            prefix=self.command(),
            probe=lambda url: self.request(url + "/ready") == 200,
        )

    def close(self) -> None:
        self._holder.terminate()
        self._holder.wait(10)
        if self._holder.stdout is not None:
            self._holder.stdout.close()


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNamespace]:
    namespace = NetNamespace()
    try:
        yield namespace
    finally:
        namespace.close()


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
