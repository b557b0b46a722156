"""Pure encodings of streamed messages: COMET lines, SSE events, WebSocket text frames.

Each encoding of a delivery is made once and cached on it, so a broadcast to many consumers
encodes every message once per format.
"""

from __future__ import annotations

from typing import Any

import orjson

from restmq.core.dispatch import Delivery
from restmq.core.model import HistoryEntry


def message_object(delivery: Delivery | HistoryEntry, lease: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"key": delivery.key, "value": delivery.value}
    if lease:
        data["count"] = delivery.count
    return data


def _json(delivery: Delivery) -> bytes:
    cached = delivery.encoded.get("json")
    if cached is None:
        cached = delivery.encoded["json"] = orjson.dumps(message_object(delivery, delivery.lease))
    return cached


def comet_line(delivery: Delivery, callback: str | None = None) -> bytes:
    if callback:
        return b"%s(%s);\r\n" % (callback.encode(), _json(delivery))
    cached = delivery.encoded.get("comet")
    if cached is None:
        cached = delivery.encoded["comet"] = _json(delivery) + b"\r\n"
    return cached


def sse_event(delivery: Delivery) -> bytes:
    cached = delivery.encoded.get("sse")
    if cached is None:
        cached = delivery.encoded["sse"] = b"id: %s\ndata: %s\n\n" % (delivery.key.encode(), _json(delivery))
    return cached


def sse_history_event(entry: HistoryEntry) -> bytes:
    return b"id: %s\ndata: %s\n\n" % (entry.key.encode(), orjson.dumps(message_object(entry)))


def sse_named(event: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event.encode(), orjson.dumps(data))


def sse_retry(ms: int) -> bytes:
    return b"retry: %d\n\n" % ms


SSE_HEARTBEAT = b": heartbeat\n\n"


def ws_text(delivery: Delivery) -> str:
    cached = delivery.encoded.get("ws")
    if cached is None:
        cached = delivery.encoded["ws"] = _json(delivery).decode()
    return cached
