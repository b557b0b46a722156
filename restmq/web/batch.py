"""Batch bodies (a JSON array, or NDJSON: one JSON value per line) decoded within --max-batch.

The number of messages is checked before the values are decoded, so a body of millions of tiny
elements is refused after a scan that stops at element max_batch + 1, instead of after building
millions of objects (an 8 MiB body of `[],` took 1.5 s and 250 MiB to decode).
"""

from __future__ import annotations

import json
import re

import orjson

from restmq.errors import InvalidJSON, PayloadTooLarge

# A line that is not blank, from its first non-space byte. Lines end at \n, \r or \r\n, as
# bytes.splitlines() has them; a match never starts on a space, so blank lines cost no backtracking.
_LINE = re.compile(rb"[^ \t\r\n\x0b\x0c][^\r\n]*")
_AFTER_ELEMENT = re.compile(r"[ \t\r\n]*([,\]])[ \t\r\n]*")
_ARRAY_START = re.compile(r"[ \t\r\n]*\[[ \t\r\n]*")
_DECODER = json.JSONDecoder()


def too_large(max_batch: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the batch has more messages than the limit of {max_batch} (--max-batch)")


def batch_values(raw: bytes, ndjson: bool, max_batch: int) -> list[str]:
    """The messages of a batch body; each element that is not a string is stored as its JSON text.
    More than `max_batch` of them is a 413 before any is decoded; malformed JSON is a 400."""
    items = _ndjson(raw, max_batch) if ndjson else _array(raw, max_batch)
    return [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]


def _ndjson(raw: bytes, max_batch: int) -> list[object]:
    lines: list[bytes] = []
    for match in _LINE.finditer(raw):
        if len(lines) == max_batch:
            raise too_large(max_batch)
        lines.append(match.group())
    try:
        return [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"malformed JSON: {exc}") from exc


def _array(raw: bytes, max_batch: int) -> list[object]:
    # n elements need n - 1 commas: with fewer commas than the limit, the body cannot pass it
    if raw.count(b",") >= max_batch:
        _count_elements(raw.decode(), max_batch)
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"malformed JSON: {exc}") from exc
    if not isinstance(items, list):
        raise InvalidJSON("a batch must be a JSON array")
    if len(items) > max_batch:  # the scan above makes this unreachable; kept as the rule itself
        raise too_large(max_batch)
    return items


def _count_elements(text: str, max_batch: int) -> None:
    """Walk the top-level elements of a JSON array (each decoded alone, then dropped) and refuse the
    body at element max_batch + 1. At most max_batch + 1 steps, whatever the body holds."""
    start = _ARRAY_START.match(text)
    if start is None:
        raise InvalidJSON("a batch must be a JSON array")
    pos, count = start.end(), 0
    if text.startswith("]", pos):
        return
    while True:
        if count == max_batch:
            raise too_large(max_batch)
        try:
            _, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidJSON(f"malformed JSON: {exc}") from exc
        except RecursionError:
            raise InvalidJSON("malformed JSON: nested too deeply") from None
        count += 1
        after = _AFTER_ELEMENT.match(text, pos)
        if after is None:
            raise InvalidJSON(f"malformed JSON: expected ',' or ']' at char {pos}")
        if after.group(1) == "]":
            return
        pos = after.end()
