"""Bearer tokens: format, hashing, scopes (shell-style queue patterns), rights and expiry."""

from __future__ import annotations

import hashlib
import time

import pytest

from restmq.core.tokens import PREFIX, RIGHTS, TokenRecord, digest, new_token, split, verify

pytestmark = pytest.mark.unit


def make(queues: tuple[str, ...] = ("orders.*",), rights: tuple[str, ...] = ("read",), **kw: float) -> TokenRecord:
    return new_token(queues, rights, kw.get("ttl"))[1]


def test_a_new_token_is_shown_once_and_stored_hashed() -> None:
    token, record = new_token(("orders.*", "audit"), ("read", "write"), note="billing")
    assert token.startswith(PREFIX)
    parts = split(token)
    assert parts is not None
    token_id, secret = parts
    assert token_id == record.id and len(token_id) == 12
    assert record.digest == hashlib.sha256(secret.encode()).hexdigest() == digest(secret)
    stored = record.to_json()
    assert secret not in stored and token not in stored
    assert TokenRecord.from_json(stored) == record
    assert record.queues == ("orders.*", "audit") and record.rights == ("read", "write") and record.note == "billing"
    assert record.expires is None
    assert verify(record, secret)
    assert not verify(record, secret + "x") and not verify(record, secret[:-1])


def test_two_tokens_differ() -> None:
    first, _ = new_token(("*",), ("read",))
    second, _ = new_token(("*",), ("read",))
    assert first != second


@pytest.mark.parametrize(
    "token",
    ["", "rmq_", "rmq__secret", "rmq_abc_secret", "rmq_0123456789ab", "rmq_0123456789ab_", "xyz_0123456789ab_s"],
)
def test_malformed_tokens_do_not_split(token: str) -> None:
    assert split(token) is None


def test_a_secret_may_hold_underscores() -> None:
    assert split("rmq_0123456789ab_se_cr_et") == ("0123456789ab", "se_cr_et")


@pytest.mark.parametrize(
    ("queue", "covered"),
    [
        ("orders.eu", True),
        ("orders.", True),
        ("orders.eu.west", True),
        ("orders.eu:dead", True),
        ("orders", False),
        ("ordersXeu", False),  # the dot is literal, not a regex wildcard
        ("audit", False),
        ("Orders.eu", False),  # case-sensitive
        ("xorders.eu", False),
    ],
)
def test_patterns_are_shell_style_and_anchored(queue: str, covered: bool) -> None:
    record = make(("orders.*",))
    assert record.covers(queue) is covered
    assert record.allows(queue, "read") is covered


def test_several_patterns_and_exact_names() -> None:
    record = make(("orders.*", "audit", "job?"))
    assert record.covers("audit") and not record.covers("audit2") and not record.covers("xaudit")
    assert record.covers("job1") and not record.covers("job12")


@pytest.mark.parametrize(
    ("rights", "allowed"),
    [
        (("read",), {"read"}),
        (("write",), {"write"}),
        (("read", "write"), {"read", "write"}),
        (("admin",), {"read", "write", "admin"}),  # admin is everything
    ],
)
def test_rights(rights: tuple[str, ...], allowed: set[str]) -> None:
    record = make(("*",), rights)
    for right in RIGHTS:
        assert record.allows("q", right) is (right in allowed)
        assert record.allows(None, right) is (right in allowed)  # listings: any covered queue


def test_expiry() -> None:
    token, record = new_token(("*",), ("read",), ttl=60)
    parts = split(token)
    assert parts is not None
    secret = parts[1]
    assert record.expires is not None and record.expires == pytest.approx(time.time() + 60, abs=5)
    assert not record.expired() and verify(record, secret)
    assert record.expired(now=record.expires) and record.expired(now=record.expires + 1)
    assert not record.expired(now=record.expires - 1)
    past = TokenRecord(record.id, record.digest, record.queues, record.rights, record.created, time.time() - 1)
    assert past.expired() and not verify(past, secret)


@pytest.mark.parametrize(
    ("queues", "rights", "ttl"),
    [
        ((), ("read",), None),
        (("q",), (), None),
        (("q",), ("read", "superuser"), None),
        (("q",), ("READ",), None),
        (("q",), ("read",), 0),  # "expires in 0s" must not mean "never expires"
        (("q",), ("read",), -5),
    ],
)
def test_bad_tokens_are_refused(queues: tuple[str, ...], rights: tuple[str, ...], ttl: float | None) -> None:
    with pytest.raises(ValueError):
        new_token(queues, rights, ttl)
