"""Run in a private network namespace (tests/helpers/netns.py): start `restmq serve --host ::` with the
options given, then make the requests of PROBES from 127.0.0.1 and from ::1 and print, as one JSON
line, the status each got ("refused" when the connection failed), or how the server exited.

    python -m tests.helpers.dualstack_probe LOG_PATH SERVE_OPTION...
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import orjson

from tests.helpers.server import ServeProcess, free_port

# name -> (source address, method, path, extra headers)
PROBES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "v4_add": ("127.0.0.1", "POST", "/q/jobs", {}),
    "v6_add": ("::1", "POST", "/q/jobs", {}),
    "v4_get": ("127.0.0.1", "GET", "/q/jobs", {}),
    "v4_get_forwarded": ("127.0.0.1", "GET", "/q/jobs", {"X-Forwarded-For": "8.8.8.8"}),
    "v6_get": ("::1", "GET", "/q/jobs", {}),
}


def probe(port: int, address: str, method: str, path: str, headers: dict[str, str]) -> int | str:
    host = f"[{address}]" if ":" in address else address
    data = {"value": "probe"} if method == "POST" else None
    try:
        return httpx.request(method, f"http://{host}:{port}{path}", headers=headers, data=data, timeout=10).status_code
    except httpx.TransportError as exc:
        return f"refused: {exc!r}"


def main(log_path: str, *serve_options: str) -> dict[str, object]:
    server = ServeProcess(["--host", "::", *serve_options], free_port(), Path(log_path), url_host="::1")
    try:
        try:
            server.wait_ready(timeout=60)
        except AssertionError:
            server.kill()
            return {"exit": server.proc.returncode, "log": server.log()[-2000:]}
        return {name: probe(server.port, *spec) for name, spec in PROBES.items()}
    finally:
        server.stop()


if __name__ == "__main__":
    print(orjson.dumps(main(*sys.argv[1:])).decode())
