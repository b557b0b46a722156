"""Listening sockets, the same on every path: uvicorn with one worker, uvicorn's --workers, granian.

`--host ::` is dual-stack everywhere: one IPv6 socket that takes IPv4 connections too (IPV6_V6ONLY
off), whose IPv4 clients appear as ::ffff:a.b.c.d and are matched as IPv4 (restmq/web/addresses.py).
`--host 0.0.0.0` is IPv4 only; any other address, only itself. A host name binds the first address
it resolves to. asyncio, which uvicorn uses with one worker, would turn IPV6_V6ONLY on and Linux's
default (net.ipv6.bindv6only) could too: RestMQ makes uvicorn's sockets itself and sets it. granian
makes its own sockets and leaves the option to the kernel, so it refuses to start on :: where that
would make it IPv6-only.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

BINDV6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound (not yet listening) to `host`:`port`; OSError when it cannot be."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack on ::, whatever the kernel says
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """bind_socket, with a one-line error when the address cannot be had."""
    try:
        return bind_socket(host, port, reuse_port=reuse_port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def refuse_a_port_in_use(host: str, port: int) -> None:
    """Workers listen with SO_REUSEPORT, so a second server on a port in use would share it
    silently: bind once without it first, to fail as a single process does."""
    if port != 0:
        listening_socket(host, port).close()


def refuse_ipv6_only_granian(host: str) -> None:
    """granian cannot be told to listen dual-stack: on :: it follows net.ipv6.bindv6only. Where
    that would make it IPv6-only, stop rather than silently serve a different set of clients."""
    try:
        if not ipaddress.ip_address(host) == ipaddress.IPv6Address("::"):
            return
        ipv6_only = BINDV6ONLY.read_text().strip() == "1"
    except (ValueError, OSError):
        return
    if ipv6_only:
        raise click.ClickException(
            "--host :: listens on IPv6 and IPv4, but with net.ipv6.bindv6only=1 granian would listen on IPv6 "
            "only: use --server uvicorn, set sysctl net.ipv6.bindv6only=0, or give an IPv4 --host"
        )
