"""What every benchmark script shares: starting servers, reading CPU time, describing the machine."""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import importlib.metadata
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from restmq.storage.engine import find_engine_binary

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    _libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG: no orphan servers if we are SIGKILLed


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    engine_pid: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.proc.returncode}; end of its log:\n{tail(self.log)}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: `restmq serve --server granian` serves from a worker process."""
    tree = [pid]
    for child in children(pid):
        tree += process_tree(child)
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{member}/status").read_text()
            total += next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
    return total


def busy_seconds() -> float:
    """CPU time every process on the machine spent so far (user, nice, system, irq, softirq, steal)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf("SC_CLK_TCK")


def start_server(
    stack: contextlib.ExitStack, name: str, args: list[str], tmp: Path, ready: str, engine_pid: int
) -> Server:
    """Start `python <args> --port <free port>` and wait until GET `ready` answers (any status)."""
    port = free_port()
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches only us; the caller's ExitStack stops the servers
            preexec_fn=die_with_parent,
        )
    server = Server(name, port, proc, log, engine_pid)
    stack.callback(server.stop)
    deadline = time.monotonic() + 30
    while True:
        server.check()
        try:
            with urllib.request.urlopen(server.url(ready), timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer within 30 s; end of its log:\n{tail(log)}") from None
            time.sleep(0.05)


def http(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        data: bytes = response.read()
        return data


def version_of(cmd: list[str]) -> str:
    """The first line a program prints about its version, trimmed."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = ((out.stdout or out.stderr).splitlines() or ["unknown"])[0]
    return first.split(" sha=")[0].split(" Copyright")[0].strip()


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo.splitlines() if x.startswith("model name")), "unknown")
    packages = ("starlette", "uvicorn", "granian", "redis", "hiredis", "uvloop", "httptools", "orjson")
    installed = []
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            installed.append(f"{package} {importlib.metadata.version(package)}")
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "engine": version_of([find_engine_binary(), "--version"]),
        "wrk": version_of(["wrk", "-v"]),
        "redis-benchmark": version_of(["redis-benchmark", "--version"]),
        "nginx": version_of(["nginx", "-v"]),
        "nchan": version_of(["dpkg-query", "-W", "-f=libnginx-mod-nchan ${Version}", "libnginx-mod-nchan"]),
        "packages": ", ".join(installed),
        "restmq revision": version_of(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        + " (plus any local edits)",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit to the hard one (servers started after inherit it): the
    streaming tests open thousands of connections. Returns the limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def restmq_serve(url: str, server: str = "uvicorn", *extra: str) -> list[str]:
    """The arguments of `python -m restmq serve` on engine `url` for a benchmark (one worker)."""
    return ["-m", "restmq", "serve", "--redis", url, "--log-level", "warning", "--server", server, *extra]


STREAM_LIMITS = ("--max-streams", "20000", "--max-streams-per-client", "20000")  # for 10,000 idle streams


def command_line(script: str) -> str:
    exe = Path(sys.executable)
    shown = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else str(exe)
    return " ".join([shown, script, *sys.argv[1:]])
