"""`--push-allow`: which targets push may call (SSRF rules, docs/push.md#ssrf). Pure functions, no I/O.

Each rule is a host name (`hooks.example.com`), a domain's subdomains (`*.example.com`), an IP address or a CIDR,
optionally prefixed with the one scheme it allows (`http://` or `https://`). Without a prefix a name rule allows
https only, and an address or network rule allows both (addresses seldom have certificates).

A target given by address passes when an address/network rule holds it (and allows its scheme). A target given by
name passes when a name rule matches it (and allows its scheme) and EVERY address the name resolves to is public or
inside an address/network rule. Loopback, private, link-local, shared, multicast and reserved addresses are
reachable only through an address/network rule that names them: an allowed name resolving to 127.0.0.1 or
169.254.169.254 is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from restmq.errors import PushTargetNotAllowed

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Rule:
    schemes: tuple[str, ...]
    name: str = ""  # a host name, lower case; "*.example.com" for its subdomains
    network: Network | None = None

    def matches_name(self, host: str) -> bool:
        if not self.name:
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:]) and len(host) > len(self.name) - 1
        return host == self.name


def parse_rule(entry: str) -> Rule:
    """One --push-allow entry; ValueError names what is wrong."""
    text = entry.strip()
    scheme = ""
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in SCHEMES or not text:
            raise ValueError(f"--push-allow {entry!r}: the prefix must be http:// or https://")
    text = text.rstrip("/")
    try:
        network = ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        network = None
    if network is not None:
        return Rule((scheme,) if scheme else SCHEMES, network=network)
    name = text.lower().rstrip(".")
    labels = name[2:] if name.startswith("*.") else name
    if not labels or not all(
        part and len(part) <= 63 and part.replace("-", "").isalnum() for part in labels.split(".")
    ):
        raise ValueError(f"--push-allow {entry!r}: not a host name, *.domain, IP address or CIDR")
    return Rule((scheme or "https",), name=name)


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _public(address: Address) -> bool:
    return address.is_global and not address.is_multicast


class AllowList:
    def __init__(self, entries: Iterable[str]) -> None:
        self.rules = [parse_rule(entry) for entry in entries if entry.strip()]

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def check_url(self, url: str) -> None:
        """What can be checked before resolving: the scheme, and an address literal or a host name against the
        rules."""
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        try:
            literal: Address | None = _plain(ipaddress.ip_address(host))
        except ValueError:
            literal = None
        if literal is not None:
            self.check_addresses(parts.scheme, host, [literal])
            return
        if not any(parts.scheme in rule.schemes for rule in self.rules if rule.matches_name(host.lower())):
            raise PushTargetNotAllowed(f"push target {parts.scheme}://{host} is not allowed by --push-allow")

    def check_addresses(self, scheme: str, host: str, addresses: Sequence[Address]) -> None:
        """Every address `host` resolved to must be allowed (PushTargetNotAllowed names the first that is not)."""
        host = host.lower().rstrip(".")
        try:
            ipaddress.ip_address(host)
            named = False  # an address literal passes through an address/network rule only
        except ValueError:
            named = any(rule.matches_name(host) and scheme in rule.schemes for rule in self.rules)
            if not named:
                raise PushTargetNotAllowed(f"push target {scheme}://{host} is not allowed by --push-allow") from None
        if not addresses:
            raise PushTargetNotAllowed(f"push target {host} resolved to no address")
        for raw in addresses:
            address = _plain(raw)
            in_network = any(
                rule.network is not None and scheme in rule.schemes and address in rule.network for rule in self.rules
            )
            if not in_network and not (named and _public(address)):
                raise PushTargetNotAllowed(
                    f"push target {host} resolves to {address}, which --push-allow does not allow"
                )
