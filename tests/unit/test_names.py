"""Validation of names that come from outside: queue names, JSONP callbacks, message keys."""

from __future__ import annotations

import pytest

from restmq.core.names import MAX_QUEUE_NAME, QUEUE_NAME_RULE, check_callback, check_queue_name, parse_message_key
from restmq.errors import InvalidCallback, InvalidQueueName

pytestmark = pytest.mark.unit

VALID_QUEUES = ["q", "Q", "0", "a" * MAX_QUEUE_NAME, "jobs.high-prio_v2:eu@host", "q:dead", ":", "@", ".", "-_"]
INVALID_QUEUES = [
    "",
    " ",
    "a b",
    "a/b",
    "a{b",
    "a}b",
    "{q}",
    "a|dead",
    "a*",
    "a?",
    "a[b]",
    "a\nb",
    "q\n",
    "a\x00b",
    "a" * (MAX_QUEUE_NAME + 1),
    "café",
    "ｑ",  # fullwidth letter
    "٣",  # Arabic-Indic digit
    "a%2Fb",
    "a+b",
    "a#b",
]


@pytest.mark.parametrize("name", VALID_QUEUES)
def test_valid_queue_names_pass_through(name: str) -> None:
    assert check_queue_name(name) == name


@pytest.mark.parametrize("name", INVALID_QUEUES)
def test_invalid_queue_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidQueueName) as caught:
        check_queue_name(name)
    assert caught.value.code == "QUEUE_NAME_INVALID"
    assert caught.value.status == 400
    assert QUEUE_NAME_RULE in caught.value.message
    assert "1-200 characters of A-Z a-z 0-9 _ - . : @" in caught.value.message


@pytest.mark.parametrize("name", ["cb", "_", "$", "jQuery123_456", "a.b.c", "$.x_y", "A" + "b" * 63])
def test_valid_callbacks_pass_through(name: str) -> None:
    assert check_callback(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "alert(1)//", "a b", "<script>", "1cb", "9", "a" * 65, "cb;", "cb()", "a-b", "a\nb", "cb\n", "é", "a[0]"],
)
def test_hostile_callbacks_are_refused(name: str) -> None:
    with pytest.raises(InvalidCallback) as caught:
        check_callback(name)
    assert caught.value.code == "CALLBACK_INVALID"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("queue", "key", "n"),
    [
        ("q", "q:1", 1),
        ("q", "q:42", 42),
        ("a:b", "a:b:7", 7),
        ("q", "q:" + "9" * 18, int("9" * 18)),
        ("q:dead", "q:dead:3", 3),
    ],
)
def test_parse_message_key_reads_the_number(queue: str, key: str, n: int) -> None:
    assert parse_message_key(queue, key) == n


@pytest.mark.parametrize(
    ("queue", "key"),
    [
        ("q", "q:0"),
        ("q", "q:"),
        ("q", "q"),
        ("q", "p:1"),
        ("q", "qq:1"),
        ("q", "q:-1"),
        ("q", "q:+1"),
        ("q", "q:1.0"),
        ("q", "q: 1"),
        ("q", "q:1 "),
        ("q", "q:01"),  # not a key this project issues
        ("q", "q:" + "9" * 19),
        ("q", "q:²"),  # str.isdigit() is True, int() refuses it
        ("q", "q:١"),  # Arabic-Indic one: int() would accept it
        ("q", "q:１"),  # fullwidth one
        ("a:b", "a:1"),
        ("a", "a:b:1"),
    ],
)
def test_parse_message_key_refuses_anything_but_canonical_keys(queue: str, key: str) -> None:
    assert parse_message_key(queue, key) is None
