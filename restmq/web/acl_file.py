"""acl.conf read into AclRules: today's syntax and the RestMQ 2010 one, which it extends.

Host lists hold addresses and CIDR networks, separated by spaces or commas. The 2010 syntax adds:

- `all`: in hosts_allow, every address (the deny list still applies); in hosts_deny, every address that
  hosts_allow does not list (with no hosts_allow, the section refuses every address);
- a trailing-dot IPv4 prefix, `192.168.0.` or `10.`: the network it starts, 192.168.0.0/24 or 10.0.0.0/8;
- `username` without `password`: RestMQ 2010 asked no credentials then, and neither does this.

What a 2010 entry became is reported (read_acl's notes and warnings) so that `restmq serve` logs it once.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from restmq.web.addresses import Network, parse_networks
from restmq.web.auth import CATEGORIES, EVERY_ADDRESS, AclRule

KEYS = {"hosts_allow", "hosts_deny", "username", "password"}


@dataclass
class AclFile:
    rules: dict[str, AclRule]
    notes: list[str] = field(default_factory=list)  # what a 2010 entry became (logged as info)
    warnings: list[str] = field(default_factory=list)  # where a rule is not what it looks like


def load_acl(path: str | Path) -> dict[str, AclRule]:
    """The rules of an acl.conf; ValueError (naming the file) for one that cannot be read or used."""
    return read_acl(path).rules


def read_acl(path: str | Path) -> AclFile:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        read = parser.read(path)
    except configparser.Error as exc:  # no section header, a duplicate key, ...: still a ValueError
        raise ValueError(f"{path}: {' '.join(str(exc).split())}") from None
    if not read:
        raise ValueError(f"cannot read ACL file {path}")
    parsed = AclFile({})
    for section in parser.sections():
        if section not in CATEGORIES:
            raise ValueError(f"{path}: unknown section [{section}]; use {', '.join(CATEGORIES)}")
        fields = dict(parser[section])
        unknown = set(fields) - KEYS
        if unknown:
            raise ValueError(f"{path} [{section}]: unknown keys {', '.join(sorted(unknown))}")
        parsed.rules[section] = _section(fields, f"{path} [{section}]", parsed)
    return parsed


def _section(fields: dict[str, str], where: str, parsed: AclFile) -> AclRule:
    allow_all, allow = _hosts(fields.get("hosts_allow", ""), where, "hosts_allow", parsed)
    deny_all, deny = _hosts(fields.get("hosts_deny", ""), where, "hosts_deny", parsed)
    if deny_all and allow_all:
        parsed.warnings.append(f"{where}: hosts_allow = all and hosts_deny = all admit every address (allow wins)")
    elif deny_all and not allow:
        deny = tuple(EVERY_ADDRESS)
        parsed.warnings.append(
            f"{where}: hosts_deny = all without hosts_allow refuses every address (RestMQ 2010 let every "
            "address in here)"
        )
    # with a hosts_allow list, `hosts_deny = all` says what the list already does: it admits only what it lists
    username, password = fields.get("username"), fields.get("password")
    if password is not None and username is None:
        raise ValueError(f"{where}: username and password go together (a password needs a username)")
    if username is not None and password is None:
        parsed.warnings.append(
            f"{where}: username {username} without a password asks no credentials (as in RestMQ 2010): the "
            "section admits anyone its host rules admit; add a password to require HTTP Basic"
        )
        username = None
    return AclRule(allow=allow, deny=deny, username=username, password=password)


def _hosts(raw: str, where: str, key: str, parsed: AclFile) -> tuple[bool, tuple[Network, ...]]:
    """(whether the list says `all`, its other entries as networks)."""
    items = raw.replace(",", " ").split()
    every = any(item.lower() == "all" for item in items)
    entries = []
    try:
        for item in items:
            if item.lower() == "all":
                continue
            network = _dotted_prefix(item)
            if network is not None:
                parsed.notes.append(f"{where} {key}: {item} is {network}")
            entries.append(network or item)
        networks = parse_networks(entries)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return every, () if every and key == "hosts_allow" else networks


def _dotted_prefix(item: str) -> str | None:
    """`192.168.0.` (one to three IPv4 octets and a dot) as the CIDR network it starts, else None."""
    if not item.endswith("."):
        return None
    octets = item[:-1].split(".")
    if not 1 <= len(octets) <= 3 or not all(o.isascii() and o.isdigit() and int(o) <= 255 for o in octets):
        raise ValueError(f"{item!r} is not an address prefix such as 192.168.0. (one to three numbers and a dot)")
    padded = octets + ["0"] * (4 - len(octets))
    return f"{'.'.join(str(int(o)) for o in padded)}/{8 * len(octets)}"
