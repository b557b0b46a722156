"""IP addresses as RestMQ compares them: IPv4-mapped IPv6 addresses (how a dual-stack socket shows an
IPv4 client: ::ffff:127.0.0.1) are the IPv4 address they carry, in peers and in rules alike, so that
IPv4 rules match them; and the entries of X-Forwarded-For, parsed strictly."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from restmq.errors import InvalidForwarded

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def canonical(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it carries; any other address unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_network(network: Network) -> Network:
    """A network inside ::ffff:0:0/96 as the IPv4 network it maps, so that it matches IPv4 clients."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and CIDR networks (host bits set are allowed); ValueError names the first bad one."""
    networks = []
    for item in items:
        try:
            networks.append(canonical_network(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an address or CIDR network") from None
    return tuple(networks)


@functools.lru_cache(maxsize=4096)
def canonical_host(host: str) -> str:
    """A peer's address as text, an IPv4-mapped one as IPv4; what is not an address stays as it is."""
    try:
        return str(canonical(ipaddress.ip_address(host)))
    except ValueError:
        return host


def forwarded_address(entry: str) -> tuple[Address, int]:
    """One X-Forwarded-For entry: an IPv4 or IPv6 address, IPv6 optionally in brackets, either
    optionally with a :port (0 when absent). InvalidForwarded for anything else."""
    text, port = entry.strip(), "0"
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            text = ""
        port = rest[1:] if rest else "0"
    elif text.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has two colons at least)
        text, _, port = text.partition(":")
    try:
        if not (port.isdigit() and int(port) <= 65535):
            raise ValueError(port)
        return canonical(ipaddress.ip_address(text)), int(port)
    except ValueError:
        shown = entry.strip()[:64]
        raise InvalidForwarded(f"X-Forwarded-For from a trusted proxy holds {shown!r}, not an address") from None
