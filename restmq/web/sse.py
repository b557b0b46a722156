"""Pure encodings of streamed messages: COMET lines, SSE events, WebSocket text frames.

Each encoding of a delivery is made once and cached on it, so a broadcast to many consumers
encodes every message once per format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

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


def ws_payload(delivery: Delivery) -> bytes:
    """The UTF-8 payload of the delivery's WebSocket text frame (the JSON object; no str made)."""
    return _json(delivery)


# A server that puts this key in a WebSocket scope's "extensions" accepts a `websocket.send` event with
# "texts": a list of UTF-8 payloads, each one text frame, written in order and at once (restmq/cli/uvicorn_ws.py).
WS_TEXTS = "restmq.websocket.texts"

# A server that can write a streamed HTTP body without the ASGI send chain puts, once the stream's
# `http.response.start` is sent, a DirectStream under this scope key (restmq/cli/uvicorn_http.py).
HTTP_STREAM = "restmq.http.stream"


class DirectStream(Protocol):
    def write_now(self, body: bytes) -> bool:
        """Write a part of the body at once; False when the connection cannot take it now (write buffer
        full, client gone): then the app sends it the ASGI way, which waits for the buffer to drain."""

    def on_disconnect(self, callback: Callable[[], object]) -> None:
        """Call `callback` once when the client is gone (at once if it already is), so that the app need
        not wait in `receive` for `http.disconnect`."""


_SHORT, _MEDIUM, _LONG = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")


def ws_frames(payloads: list[bytes]) -> bytes:
    """Unmasked, unfragmented RFC 6455 text frames (a server's, without extensions) of `payloads`, in order."""
    frames = bytearray()
    for payload in payloads:
        size = len(payload)
        if size < 126:
            frames += _SHORT.pack(0x81, size)
        elif size < 65536:
            frames += _MEDIUM.pack(0x81, 126, size)
        else:
            frames += _LONG.pack(0x81, 127, size)
        frames += payload
    return bytes(frames)
