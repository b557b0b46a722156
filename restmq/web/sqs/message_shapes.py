"""Message attributes as SQS takes them (checked) and gives them back (filtered), and the JSON stored with each
message sent through SQS: {"i": MessageId, "t": SentTimestamp (ms), "m": MessageAttributes,
"s": MessageSystemAttributes, "g": MessageGroupId, "d": MessageDeduplicationId}."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from restmq.web.sqs.errors import SqsError, invalid

MAX_ATTRIBUTES = 10
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,256}")
DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_\-.]{1,246})?")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
SYSTEM_ATTRIBUTES = frozenset({"AWSTraceHeader"})
# Characters SQS allows in a body: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF
_BAD_BODY = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_body(body: object) -> str:
    if not isinstance(body, str):
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    if not body:
        raise invalid("The request must contain a non-empty message body.")
    if _BAD_BODY.search(body):
        raise SqsError("InvalidMessageContents", "Invalid characters found in the message body.")
    return body


def check_attributes(raw: object, *, system: bool = False) -> tuple[dict[str, dict[str, str]], int]:
    """The attributes in their JSON shape, and the bytes they count toward MaximumMessageSize."""
    if raw is None:
        return {}, 0
    if not isinstance(raw, dict):
        raise invalid("MessageAttributes must be a map of names to values.")
    if len(raw) > MAX_ATTRIBUTES:
        raise invalid(f"Number of message attributes [{len(raw)}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].")
    checked: dict[str, dict[str, str]] = {}
    size = 0
    for name, value in raw.items():
        _check_name(name, system)
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str):
            raise invalid(f"The message attribute '{name}' must contain a non-empty attribute type.")
        data_type = value["DataType"]
        if not DATA_TYPE.fullmatch(data_type):
            raise invalid(f"The message attribute '{name}' has an invalid message attribute type {data_type[:50]!r}.")
        if data_type.startswith("Binary"):
            data = value.get("BinaryValue")
            try:
                decoded = base64.b64decode(data, validate=True) if isinstance(data, str) else None
            except (binascii.Error, ValueError):
                decoded = None
            if not decoded:
                raise invalid(f"The message attribute '{name}' with type 'Binary' must use field 'Binary'.")
            checked[name] = {"DataType": data_type, "BinaryValue": data}  # type: ignore[dict-item]
            size += len(decoded)
        else:
            text = value.get("StringValue")
            if not isinstance(text, str) or not text or _BAD_BODY.search(text):
                raise invalid(f"The message attribute '{name}' must contain a non-empty message attribute value.")
            if data_type.startswith("Number") and not NUMBER.fullmatch(text):
                raise invalid(f"Can't cast the value of message attribute '{name}' to a number.")
            checked[name] = {"DataType": data_type, "StringValue": text}
            size += len(text.encode())
        size += len(name.encode()) + len(data_type.encode())
    return checked, size


def _check_name(name: object, system: bool) -> None:
    if system:
        if name not in SYSTEM_ATTRIBUTES:
            raise invalid(f"Message system attribute name {str(name)[:100]!r} is invalid.")
        return
    if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
        raise invalid(f"Message attribute name {str(name)[:100]!r} is invalid: 1-256 of A-Za-z0-9_-.")
    lowered = name.lower()
    if lowered.startswith(("aws.", "amazon.")) or ".." in name or name[0] == "." or name[-1] == ".":
        raise invalid(f"Message attribute name {name!r} is reserved or has misplaced periods.")


def selected(attributes: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """ReceiveMessage's MessageAttributeNames: All or .*, exact names, or `<prefix>.*`."""
    if not names or not attributes:
        return {}
    if "All" in names or ".*" in names:
        return attributes
    prefixes = tuple(n[:-1] for n in names if n.endswith(".*"))
    return {k: v for k, v in attributes.items() if k in names or (prefixes and k.startswith(prefixes))}


def stored(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
