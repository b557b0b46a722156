"""nginx + nchan as a benchmark contender: a child nginx on a free loopback port, configured in a temporary directory.

    server = start_nchan(stack, tmp)   # stopped by the ExitStack
    POST /pub/<channel>   raw body: publishes one message (nchan_publisher; GET: channel info)
    GET  /sub/<channel>   subscriber: EventSource (SSE, `data:` is the raw body) or WebSocket (one text frame a message)
    GET  /nchan_status    nchan_stub_status: totals, among them `subscribers: N`

nginx runs with a master process and `worker_processes 1`: one worker, to match RestMQ's one server process. The
worker serves every connection, so `.pid` is the worker (the process whose CPU and RSS to measure); the master only
supervises. Logs, pid file and temp paths stay in the temporary directory, so it runs as root without touching /var
(as root the worker keeps running as root: the temporary directory is private to it).

Needs Debian's nginx and nchan module: `apt-get install -y nginx-light libnginx-mod-nchan`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import children, die_with_parent, free_port, tail

INSTALL = "apt-get install -y nginx-light libnginx-mod-nchan"
MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
MODULE = "ngx_nchan_module.so"
BUFFER_MESSAGES = 5000  # messages kept per channel (the tests publish up to a few thousand to one channel)
RESERVED_MEMORY = "256M"  # nchan's shared memory for messages and subscribers
WORKER_CONNECTIONS = 30000  # at most: above the idle-memory test's 10,000 connections plus publishers


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def module_path() -> Path | None:
    return next((d / MODULE for d in MODULE_DIRS if (d / MODULE).exists()), None)


def available() -> str | None:
    """None when nginx and the nchan module are installed, else what is missing and how to install it."""
    missing = [name for name, found in (("nginx", nginx_binary()), ("nchan module", module_path())) if not found]
    if not missing:
        return None
    return f"{' and '.join(missing)} not found: install with `{INSTALL}` (Debian/Ubuntu)"


def config(tmp: Path, port: int, module: Path) -> str:
    root_user = "user root root;\n" if os.geteuid() == 0 else ""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # the hard limit: the worker may not go above it
    connections = min(WORKER_CONNECTIONS, nofile - 100)
    temps = "\n".join(f"    {kind}_temp_path {tmp / ('temp-' + kind)};" for kind in ("client_body", "proxy", "fastcgi"))
    return f"""load_module {module};
{root_user}worker_processes 1;
worker_rlimit_nofile {nofile};
error_log {tmp / "error.log"} warn;
pid {tmp / "nginx.pid"};
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
{temps}
    uwsgi_temp_path {tmp / "temp-uwsgi"};
    scgi_temp_path {tmp / "temp-scgi"};
    keepalive_requests 1000000;
    client_max_body_size 1m;
    nchan_max_reserved_memory {RESERVED_MEMORY};
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /nchan_status {{
            nchan_stub_status;
        }}
        location ~ ^/pub/([^/]+)$ {{
            nchan_publisher http;
            nchan_channel_id $1;
            nchan_message_buffer_length {BUFFER_MESSAGES};
            nchan_message_timeout 1h;
        }}
        location ~ ^/sub/([^/]+)$ {{
            nchan_subscriber eventsource websocket;
            nchan_channel_id $1;
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"""


@dataclass
class NchanServer:
    name: str
    port: int
    proc: subprocess.Popen[bytes]  # the master
    pid: int  # the one worker
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"nginx exited with code {self.proc.returncode}; end of its error log:\n{tail(self.log)}"
            )
        if not Path(f"/proc/{self.pid}").exists():
            raise RuntimeError(f"the nginx worker {self.pid} is gone; end of its error log:\n{tail(self.log)}")

    def subscribers(self) -> int:
        """Subscribers connected now, over every channel (nchan_stub_status)."""
        with urllib.request.urlopen(self.url("/nchan_status"), timeout=30) as response:
            text = response.read().decode()
        return int(next(x for x in text.splitlines() if x.startswith("subscribers:")).split(":")[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the worker ends, then the master
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # in case the master died before its worker


def start_nchan(stack: contextlib.ExitStack, tmp: Path, timeout: float = 30.0) -> NchanServer:
    """Start nginx + nchan on a free loopback port; it answers (and its worker is known) on return."""
    problem = available()
    if problem:
        raise RuntimeError(problem)
    nginx, module = nginx_binary(), module_path()
    assert nginx is not None and module is not None
    prefix = tmp / "nchan"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(config(prefix, port, module))
    log = prefix / "error.log"
    out = prefix / "stderr.log"
    cmd = [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", str(log), "-g", "daemon off;"]
    with open(out, "wb") as stderr:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    server = NchanServer("nchan", port, proc, 0, log)
    stack.callback(server.stop)
    deadline = time.monotonic() + timeout

    def failed(why: str) -> RuntimeError:
        return RuntimeError(f"nginx + nchan {why}: {' '.join(cmd)}\n{tail(out)}\nend of its error log:\n{tail(log)}")

    while True:
        if proc.poll() is not None:
            raise failed(f"exited with code {proc.returncode}")
        workers = children(proc.pid)
        if len(workers) == 1:
            server.pid = workers[0]
            try:
                server.subscribers()
                return server
            except (OSError, urllib.error.URLError, StopIteration, ValueError):
                pass
        if time.monotonic() > deadline:
            raise failed(f"did not answer within {timeout:.0f} s")
        time.sleep(0.05)
