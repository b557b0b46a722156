"""Validation rules for names that come from outside: queue names, message keys, JSONP callbacks."""

from __future__ import annotations

import re

from restmq.errors import InvalidCallback, InvalidParameter, InvalidQueueName

# Each rule is defined here once, as a regular expression for a whole string; the server, the client and the
# API description (restmq/web/openapi.py, which anchors them with ^...$) all use these.
MAX_QUEUE_NAME = 200
QUEUE_NAME_PATTERN = rf"[A-Za-z0-9_\-.:@]{{1,{MAX_QUEUE_NAME}}}"
QUEUE_NAME_RULE = f"queue names are 1-{MAX_QUEUE_NAME} characters of A-Z a-z 0-9 _ - . : @"
MAX_MESSAGE_NUMBER_DIGITS = 18
MESSAGE_KEY_PATTERN = rf"{QUEUE_NAME_PATTERN}:[1-9][0-9]{{0,{MAX_MESSAGE_NUMBER_DIGITS - 1}}}"
CALLBACK_PATTERN = r"[A-Za-z_$][A-Za-z0-9_$.]{0,63}"
MAX_IDEMPOTENCY_KEY = 256  # characters of an Idempotency-Key (or its id= query form)
MAX_PRIORITY = 9  # priorities are 0 (the default) to 9, higher first
MAX_TTL = 10 * 365 * 86400.0  # seconds a message may live (ttl=)
MAX_DELIVERIES = 1_000_000  # the highest max_deliveries= a queue's flow control takes (0: unlimited)
# Message group ids (group=): what Amazon SQS allows for a MessageGroupId, every printable ASCII character but space.
# The storage scripts rely on it: no space, nothing below it (storage/lua/_lib.lua, message groups).
MAX_GROUP_ID = 128
GROUP_ID_PATTERN = rf"[!-~]{{1,{MAX_GROUP_ID}}}"
GROUP_ID_RULE = f"group ids are 1-{MAX_GROUP_ID} characters of A-Z a-z 0-9 and ASCII punctuation, no space"
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
_CALLBACK = re.compile(CALLBACK_PATTERN)
_GROUP_ID = re.compile(GROUP_ID_PATTERN)


def check_queue_name(name: str) -> str:
    if not _QUEUE_NAME.fullmatch(name):
        raise InvalidQueueName(f"invalid queue name: {QUEUE_NAME_RULE}")
    return name


def check_group_id(group: str) -> str:
    if not _GROUP_ID.fullmatch(group):
        raise InvalidParameter(f"invalid group: {GROUP_ID_RULE}")
    return group


def check_callback(name: str) -> str:
    if not _CALLBACK.fullmatch(name):
        raise InvalidCallback(f"invalid callback: it must match ^{CALLBACK_PATTERN}$")
    return name


def parse_message_key(queue: str, key: str) -> int | None:
    """The number n of a public message key ``<queue>:<n>``, or None when it is not a key of `queue`."""
    prefix = queue + ":"
    if not key.startswith(prefix):
        return None
    tail = key[len(prefix) :]
    # ASCII digits only (str.isdigit also accepts "²" and other scripts' digits) and no leading zero:
    # exactly the keys this project issues.
    if not (tail.isascii() and tail.isdigit()) or len(tail) > MAX_MESSAGE_NUMBER_DIGITS or tail.startswith("0"):
        return None
    n = int(tail)
    return n if n > 0 else None
