"""How `restmq serve` chooses its authentication mode (issue 13): every combination of --auth, --acl,
tokens at start-up, a loopback or public --host and --insecure-open. The real servers are in
tests/integration/test_security_defaults.py."""

from __future__ import annotations

import ipaddress

import click
import pytest

from restmq.cli.auth_mode import AuthPlan, check_auth_options, is_loopback, resolve_auth
from restmq.config import Settings
from restmq.web.auth import AclRule, open_categories

pytestmark = pytest.mark.unit

RULES = {"rest:producer": AclRule(allow=(ipaddress.ip_network("10.0.0.0/8"),))}
DENY_ONLY = {"rest:consumer": AclRule(deny=(ipaddress.ip_network("10.0.0.1/32"),))}


def plan(
    host: str,
    auth: str = "auto",
    rules: dict[str, AclRule] | None = None,
    tokens: bool = False,
    insecure_open: bool = False,
) -> tuple[AuthPlan, bool]:
    """The plan for these options, and whether the backend was asked whether tokens exist."""
    acl = "acl.conf" if rules is not None else None
    settings = Settings(host=host, auth=auth, acl=acl, insecure_open=insecure_open)
    asked: list[bool] = []

    def tokens_exist() -> bool:
        asked.append(True)
        return tokens

    check_auth_options(settings, rules)
    return resolve_auth(settings, rules, tokens_exist), bool(asked)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "", "myhost.lan", "::ffff:10.0.0.1"])
def test_other_hosts_are_public(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_explicit_modes_are_kept_and_never_ask_the_backend(host: str) -> None:
    for auth, rules in (("tokens", None), ("tokens", DENY_ONLY), ("acl", RULES)):
        chosen, asked = plan(host, auth, rules)
        assert chosen.mode == auth and not asked
    none_plan, asked = plan(host, "none", insecure_open=True)
    assert none_plan.mode == "none" and not asked


def test_auto_on_a_public_host_resolves_to_a_fixed_mode() -> None:
    assert plan("0.0.0.0", tokens=True)[0].described == "tokens"
    assert plan("0.0.0.0", tokens=True)[0].mode == "tokens"
    with_acl, asked = plan("0.0.0.0", rules=RULES)
    assert with_acl.described.startswith("acl (acl.conf)") and not asked
    assert "rest:consumer" in (with_acl.warning or "")  # the sections the file leaves open are named
    deny_only = plan("0.0.0.0", rules=DENY_ONLY, tokens=True)[0]
    assert deny_only.mode == "tokens" and "host rules of acl.conf" in deny_only.described


@pytest.mark.parametrize(
    ("rules", "message"),
    [(None, "without access control:"), ({}, "acl.conf has no rule"), (DENY_ONLY, "acl.conf has no rule")],
)
def test_auto_on_a_public_host_without_authentication_is_refused(
    rules: dict[str, AclRule] | None, message: str
) -> None:
    with pytest.raises(click.UsageError, match=message):
        plan("0.0.0.0", rules=rules)
    assert plan("0.0.0.0", rules=rules, insecure_open=True)[0].mode == "auto"  # the explicit way around


def test_auto_on_loopback_is_todays_behaviour() -> None:
    assert plan("127.0.0.1")[0].mode == "auto"
    assert plan("127.0.0.1", tokens=True)[0].mode == "tokens"
    assert plan("127.0.0.1", rules=DENY_ONLY)[0].warning == (
        "acl.conf has no rule (no section with hosts_allow or username/password): it keeps no one out"
    )


@pytest.mark.parametrize(
    ("host", "auth", "rules", "message"),
    [
        ("127.0.0.1", "none", RULES, "contradict"),
        ("127.0.0.1", "acl", None, "--auth acl needs --acl FILE"),
        ("127.0.0.1", "acl", DENY_ONLY, "acl.conf has no rule"),
        ("127.0.0.1", "acl", {}, "acl.conf has no rule"),
        ("0.0.0.0", "none", None, "refusing to listen on 0.0.0.0 with --auth none"),
        ("::", "none", None, "refusing to listen on :: with --auth none"),
    ],
)
def test_refused_combinations(host: str, auth: str, rules: dict[str, AclRule] | None, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        plan(host, auth, rules)


def test_open_categories() -> None:
    assert open_categories(RULES) == ["rest:consumer", "comet:consumer", "websocket:consumer"]
    assert len(open_categories(DENY_ONLY)) == 4
    assert open_categories({c: AclRule(username="u", password="p") for c in open_categories({})}) == []
