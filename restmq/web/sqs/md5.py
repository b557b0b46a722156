"""The MD5 digests SQS replies carry and SDKs verify: of the body, and of the message attributes.

Attributes are digested sorted by name, each as: name, data type (4-byte big-endian length, then UTF-8 bytes),
one transport byte (1: String and Number types, 2: Binary), then the value (length, then its UTF-8 or raw bytes).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any


def of_body(body: str) -> str:
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """The MD5 of message attributes in their JSON 1.0 shape ({name: {DataType, StringValue | BinaryValue}}),
    BinaryValue being base64 as on the wire."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value["DataType"])
        digest.update(_field(name.encode()) + _field(data_type.encode()))
        if data_type.split(".", 1)[0] == "Binary":
            digest.update(b"\x02" + _field(base64.b64decode(value["BinaryValue"])))
        else:
            digest.update(b"\x01" + _field(str(value["StringValue"]).encode()))
    return digest.hexdigest()
