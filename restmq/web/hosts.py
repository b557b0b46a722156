"""The Host allowlist (against DNS rebinding): which names and addresses this server answers for.

DNS rebinding re-points an attacker's name at this server, so that a page on that name reads the
answers as same-origin. Only names can be rebound: an IP address in the Host is safe when it is one of
this machine's. Served, whatever the options: `localhost` and `*.localhost`, the loopback addresses,
the address bound, and this machine's own addresses (read from the kernel; what a wildcard bind
listens on). `--allowed-hosts` adds names, `*.domain` patterns, addresses, or `*` (any Host).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path

WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_CACHE_LIMIT = 1024  # distinct Host values remembered; made-up ones must not grow it without bound
_LOCAL_REFRESH = 5.0  # seconds between two readings of the machine's addresses (only on a miss)


def split_authority(text: str) -> tuple[str, str | None] | None:
    """`Host`-style text -> (host in lower case, without brackets or a final dot; port or None), or None
    when it is not one: example.com:80 -> ("example.com", "80"), [::1] -> ("::1", None)."""
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or not host:
            return None
    else:
        host, sep, digits = text.partition(":")
        rest = sep + digits
    if rest and not (rest[0] == ":" and rest[1:].isdigit()):
        return None
    host = host.removesuffix(".")
    return (host, rest[1:] or None) if host else None


@functools.lru_cache(maxsize=256)
def normal_ip(text: str) -> str | None:
    """The address in `text` as one spelling (IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def local_addresses() -> frozenset[str]:
    """This machine's addresses, on every interface (Linux: from /proc, secondary addresses included;
    elsewhere: what the host name resolves to)."""
    found: set[str] = set()
    try:
        last = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():  # IPv4: "|-- a.b.c.d" then "/32 host LOCAL"
            line = line.strip()
            if line.startswith("|-- "):
                last = line[4:]
            elif line.startswith("/32 host LOCAL") and last:
                found.add(last)
        for line in Path("/proc/net/if_inet6").read_text().splitlines():  # IPv6: 32 hex digits first
            found.add(str(ipaddress.IPv6Address(int(line.split()[0], 16))))
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
        except OSError:
            pass
    return frozenset(address for address in map(normal_ip, found) if address is not None)


class HostAllowlist:
    """Which Host header values are served (see the module's docstring). Ports do not matter."""

    def __init__(self, entries: Iterable[str], bound: str) -> None:
        self.any = False
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.addresses: set[str] = set()
        for entry in entries:
            self._add(entry)
        if bound not in WILDCARD_BINDS:
            self._add(bound)
        self._verdicts: dict[bytes, bool | str] = {}
        self._local: frozenset[str] = frozenset()
        self._local_read = -_LOCAL_REFRESH

    def _add(self, entry: str) -> None:
        entry = entry.strip()
        if entry == "*":
            self.any = True
            return
        wildcard = entry.startswith("*.")
        body = entry[2:] if wildcard else entry
        parts = split_authority(body)
        name = parts[0] if parts else ""
        address = None if wildcard else normal_ip(body.strip("[]")) or normal_ip(name)
        if address is not None:
            self.addresses.add(address)
        elif not _NAME.fullmatch(name):
            raise ValueError(f"{entry!r} is not a host name, an address, a *.domain pattern or *")
        elif wildcard:
            self.suffixes.append("." + name)
        else:
            self.names.add(name)

    def _judge(self, host: bytes) -> bool | str:
        """True, False, or an address: served when it is one of this machine's."""
        parts = split_authority(host.decode("latin-1"))
        if parts is None:
            return False
        name = parts[0]
        if self.any or name in self.names or name == "localhost" or name.endswith(".localhost"):
            return True
        if any(name.endswith(suffix) for suffix in self.suffixes):
            return True
        address = normal_ip(name)
        if address is None:
            return False
        return True if address in self.addresses or ipaddress.ip_address(address).is_loopback else address

    def allows(self, host: bytes) -> bool:
        verdict = self._verdicts.get(host)
        if verdict is None:
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            verdict = self._verdicts[host] = self._judge(host)
        if verdict is True or verdict is False:
            return verdict
        return self._is_local(verdict)

    def _is_local(self, address: str) -> bool:
        """One of this machine's addresses; read again (at most every few seconds) when not found, so
        that an address added after start-up is served too."""
        if address in self._local:
            return True
        if time.monotonic() - self._local_read >= _LOCAL_REFRESH:
            self._local, self._local_read = local_addresses(), time.monotonic()
        return address in self._local
