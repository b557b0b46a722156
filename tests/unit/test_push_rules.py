"""Push subscriptions' pure parts (issue 19): --push-allow rules, request checks, the retry schedule, headers."""

from __future__ import annotations

import base64
import ipaddress
import random

import pytest
from standardwebhooks.webhooks import Webhook

from restmq.core.model import Message
from restmq.core.push import Subscription, from_fields, parse_request
from restmq.errors import BadRequest, PushTargetNotAllowed
from restmq.push.allow import AllowList, parse_rule
from restmq.push.sender import content_type, headers

pytestmark = pytest.mark.unit

ip = ipaddress.ip_address


def test_rules_parse_names_domains_addresses_and_schemes() -> None:
    assert parse_rule("hooks.example.com").schemes == ("https",)
    assert parse_rule("http://hooks.example.com").schemes == ("http",)
    assert parse_rule("10.0.0.0/8").schemes == ("http", "https")
    assert parse_rule("https://127.0.0.1").schemes == ("https",)
    for bad in ("ftp://x.com", "a b", "*.", "http://", "-/-"):
        with pytest.raises(ValueError, match="--push-allow"):
            parse_rule(bad)


def test_names_need_a_name_rule_and_public_or_listed_addresses() -> None:
    allow = AllowList(["*.example.com", "http://intranet.test", "10.1.0.0/16"])
    allow.check_url("https://a.example.com/x")
    allow.check_addresses("https", "a.example.com", [ip("93.184.216.34")])
    for scheme, host, address in [
        ("https", "a.example.com", "127.0.0.1"),  # loopback behind an allowed name
        ("https", "a.example.com", "169.254.169.254"),  # cloud metadata
        ("https", "a.example.com", "192.168.1.1"),
        ("https", "a.example.com", "::ffff:127.0.0.1"),  # mapped loopback
        ("https", "a.example.com", "fe80::1"),
        ("http", "a.example.com", "93.184.216.34"),  # the name rule allows https only
        ("https", "example.com", "93.184.216.34"),  # *.example.com is its subdomains
        ("https", "evil.com", "93.184.216.34"),
        ("http", "10.2.0.1", "10.2.0.1"),  # outside the network rule
    ]:
        with pytest.raises(PushTargetNotAllowed):
            allow.check_addresses(scheme, host, [ip(address)])
    allow.check_addresses("http", "10.1.2.3", [ip("10.1.2.3")])
    allow.check_addresses("http", "intranet.test", [ip("10.1.9.9")])
    with pytest.raises(PushTargetNotAllowed):  # every address must pass, not one of them
        allow.check_addresses("http", "intranet.test", [ip("10.1.9.9"), ip("10.9.9.9")])
    with pytest.raises(PushTargetNotAllowed):
        allow.check_addresses("http", "intranet.test", [])
    assert not AllowList([]).enabled


def test_requests_are_checked_and_defaults_filled() -> None:
    sub = parse_request("q", {"url": "https://a.example.com/hook"})
    assert (sub.timeout, sub.max_in_flight, sub.rate, sub.max_attempts) == (10.0, 10, 0.0, 10)
    assert (sub.backoff_base, sub.backoff_cap) == (1.0, 300.0)
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    stored = parse_request("q", {"url": "http://x.test/", "secret": secret, "rate": 5, "backoff": {"base": 2}})
    back = from_fields("q", stored.fields())
    assert back == stored
    assert back.public()["secret"] is True and secret not in str(back.public())
    for bad in ({"url": "http://x.test/", "rate": True}, {"url": "http://x.test/", "backoff": []}, {"url": 5}):
        with pytest.raises(BadRequest):
            parse_request("q", bad)


def test_backoff_is_exponential_with_full_jitter() -> None:
    sub = Subscription("q", "http://x.test/", backoff_base=1.0, backoff_cap=10.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (80, 10.0)]:
        waits = [sub.backoff(attempt, rng) for _ in range(500)]
        assert 0 <= min(waits) and max(waits) <= ceiling
        assert max(waits) > ceiling * 0.9 and min(waits) < ceiling * 0.1  # spread over the whole range


def test_headers_are_standard_webhooks() -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    sub = Subscription("q", "http://x.test/", secret=secret)
    message = Message("q", 7, '{"a": 1}', 3)
    sent = headers(sub, message, message.value.encode())
    assert sent["webhook-id"] == sent["restmq-key"] == "q:7"
    assert sent["restmq-delivery-count"] == "3" and sent["content-type"] == "application/json"
    assert Webhook(secret).verify(message.value, sent) == {"a": 1}
    assert content_type("[1,") == content_type("plain") == "text/plain; charset=utf-8"
    assert "webhook-signature" not in headers(Subscription("q", "http://x.test/"), message, b"", now=0)
