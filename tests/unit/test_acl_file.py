"""acl.conf in the RestMQ 2010 syntax (issue 17): `all`, trailing-dot prefixes, `username` alone; and the
example file the 2010 release shipped, byte for byte (tests/fixtures/acl-2010.conf)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

from restmq.cli.auth_mode import acl_has_rules
from restmq.web.acl_file import AclFile, read_acl
from restmq.web.auth import COMET, CONSUMER, PRODUCER, WEBSOCKET, AclRule, open_categories
from tests.helpers.auth import SHIPPED_2010, uncommented_2010

pytestmark = pytest.mark.unit

SHIPPED_2010_BLOB = "cff0c39521c460d053893cd4a8d367db2f2df6e7"  # git blob of src/restmq/assets/acl.conf in 2010


def read_text(directory: Path, text: str) -> AclFile:
    path = directory / "acl.conf"
    path.write_text(text)
    return read_acl(path)


def networks(*items: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item) for item in items)


def test_the_fixture_is_the_2010_file_byte_for_byte() -> None:
    blob = subprocess.run(["git", "hash-object", str(SHIPPED_2010)], capture_output=True, text=True, check=True)
    assert blob.stdout.strip() == SHIPPED_2010_BLOB


def test_the_shipped_2010_example_loads_as_four_open_sections() -> None:
    parsed = read_acl(SHIPPED_2010)
    assert parsed.rules == {category: AclRule() for category in (PRODUCER, CONSUMER, COMET, WEBSOCKET)}
    assert parsed.notes == [] and parsed.warnings == []


def test_the_2010_example_with_its_rules_switched_on(tmp_path: Path) -> None:
    parsed = read_acl(uncommented_2010(tmp_path))
    rules = parsed.rules
    # hosts_allow = 127.0.0.1 192.168.0.7 / hosts_deny = all: only the listed addresses
    assert rules[PRODUCER] == AclRule(
        allow=networks("127.0.0.1/32", "192.168.0.7/32"), username="lero", password="lero"
    )
    assert rules[PRODUCER].admits("192.168.0.7") and not rules[PRODUCER].admits("192.168.0.8")
    # hosts_deny = 192.168.0.: the network 192.168.0.0/24
    assert rules[CONSUMER].deny == networks("192.168.0.0/24")
    assert rules[COMET] == AclRule(allow=networks("127.0.0.1/32"), username="lero", password="lero")
    # hosts_allow = all / hosts_deny = 192.168.0.: everyone but that network
    websocket = rules[WEBSOCKET]
    assert websocket.allow == () and websocket.deny == networks("192.168.0.0/24")
    assert websocket.admits("10.1.2.3") and websocket.admits("::1") and not websocket.admits("192.168.0.200")
    assert parsed.notes == [
        f"{tmp_path / 'acl.conf'} [rest:consumer] hosts_deny: 192.168.0. is 192.168.0.0/24",
        f"{tmp_path / 'acl.conf'} [websocket:consumer] hosts_deny: 192.168.0. is 192.168.0.0/24",
    ]
    assert parsed.warnings == []


@pytest.mark.parametrize(
    ("prefix", "network"),
    [("10.", "10.0.0.0/8"), ("172.16.", "172.16.0.0/16"), ("192.168.0.", "192.168.0.0/24")],
)
def test_a_trailing_dot_prefix_is_the_network_it_starts(tmp_path: Path, prefix: str, network: str) -> None:
    parsed = read_text(tmp_path, f"[rest:consumer]\nhosts_allow = {prefix}, 127.0.0.1\n")
    assert parsed.rules[CONSUMER].allow == networks(network, "127.0.0.1/32")
    assert parsed.notes == [f"{tmp_path / 'acl.conf'} [rest:consumer] hosts_allow: {prefix} is {network}"]


@pytest.mark.parametrize("item", ["192.168.0.1.", "256.", "1..", ".", "a.b.", "192.168"])
def test_a_bad_prefix_is_refused_with_a_clear_error(tmp_path: Path, item: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"[rest:producer]: {item!r} is not an address")):
        read_text(tmp_path, f"[rest:producer]\nhosts_allow = {item}\n")


def test_hosts_deny_all_alone_refuses_every_address_and_says_so(tmp_path: Path) -> None:
    parsed = read_text(tmp_path, "[comet:consumer]\nhosts_deny = all\n")
    comet = parsed.rules[COMET]
    assert not comet.admits("127.0.0.1") and not comet.admits("::1") and not comet.admits("10.0.0.1")
    assert comet.effective and acl_has_rules(parsed.rules) and COMET not in open_categories(parsed.rules)
    assert parsed.warnings == [
        f"{tmp_path / 'acl.conf'} [comet:consumer]: hosts_deny = all without hosts_allow refuses every address "
        "(RestMQ 2010 let every address in here)"
    ]


def test_hosts_allow_all_admits_every_address_but_the_denied(tmp_path: Path) -> None:
    parsed = read_text(tmp_path, "[rest:consumer]\nhosts_allow = all\nhosts_deny = 10.\n")
    consumer = parsed.rules[CONSUMER]
    assert consumer.admits("192.168.1.1") and consumer.admits("::1") and not consumer.admits("10.9.9.9")
    assert not consumer.effective  # it keeps only a deny list's addresses out: an open section


def test_allow_all_and_deny_all_admit_everyone_with_a_warning(tmp_path: Path) -> None:
    parsed = read_text(tmp_path, "[rest:producer]\nhosts_allow = all\nhosts_deny = all\n")
    assert parsed.rules[PRODUCER] == AclRule()
    assert parsed.warnings == [
        f"{tmp_path / 'acl.conf'} [rest:producer]: hosts_allow = all and hosts_deny = all admit every address "
        "(allow wins)"
    ]


def test_a_username_without_a_password_asks_nothing_and_says_what_it_allows(tmp_path: Path) -> None:
    parsed = read_text(tmp_path, "[rest:producer]\nhosts_allow = 127.0.0.1\nusername = lero\n")
    assert parsed.rules[PRODUCER] == AclRule(allow=networks("127.0.0.1/32"))
    assert parsed.warnings == [
        f"{tmp_path / 'acl.conf'} [rest:producer]: username lero without a password asks no credentials (as in "
        "RestMQ 2010): the section admits anyone its host rules admit; add a password to require HTTP Basic"
    ]
    alone = read_text(tmp_path, "[rest:producer]\nusername = lero\n")
    assert not acl_has_rules(alone.rules)  # keeps no one out: `--auth acl` refuses it, as any rule-less file
