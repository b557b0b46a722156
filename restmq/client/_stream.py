"""Server-Sent Events for the client streams: a line parser and the resume state both clients share."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass

from restmq.client._calls import jittered_delay
from restmq.client.models import Message

log = logging.getLogger("restmq.client")

DEDUPE_WINDOW = 10_000  # keys remembered per broadcast stream to drop a replayed duplicate
MIN_RECONNECT_BASE = 0.01  # seconds: a server's `retry: 0` still lets failed reconnects back off


@dataclass(slots=True)
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed it lines (without their line break); it returns each event when its blank line arrives."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._seen = False

    def reset(self) -> None:
        """Drop a half-received event (the connection broke in the middle of it)."""
        self._event, self._data, self._id, self._retry, self._seen = "message", [], None, None, False

    def feed(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._seen:
                return None
            event = SSEEvent(self._event, "\n".join(self._data), self._id, self._retry)
            self.reset()
            return event
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._seen = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or "message"
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


@dataclass
class Gap:
    """The server's history no longer reached back to ``last_event_id``: messages may have been missed."""

    last_event_id: str | None
    oldest: str | None


class StreamState:
    """What a stream remembers across reconnects: the last event id, recent keys and gaps."""

    def __init__(self, queue: str, lease: float | None, last_event_id: str | None) -> None:
        self.queue = queue
        self.lease = lease
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.gaps: list[Gap] = []
        self.connects = 0
        self._recent: OrderedDict[str, None] = OrderedDict()

    def reconnect_delay(self, failures: int, base: float, cap: float) -> float:
        """Seconds to wait before reconnect attempt `failures` (from 1): full jitter over the capped
        exponential backoff. The server's SSE ``retry:`` (once received) replaces `base`, and `cap`
        is never below it: a server that asks for longer waits gets them."""
        if self.retry_ms is not None:
            base = max(self.retry_ms / 1000, MIN_RECONNECT_BASE)
            cap = max(cap, base)
        return jittered_delay(failures, base, cap)

    def request_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id and self.lease is None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def request_params(self) -> dict[str, str]:
        return {"lease": f"{self.lease:g}"} if self.lease is not None else {}

    def handle(self, event: SSEEvent) -> Message | None:
        """The message an event carries, or None (named events, duplicates)."""
        if event.retry is not None:
            self.retry_ms = event.retry
        if event.event == "gap":
            gap = _gap(event.data)
            self.gaps.append(gap)
            log.warning(
                "stream %s: the server's history no longer reaches back to %s; messages may have been missed",
                self.queue,
                gap.last_event_id,
            )
            return None
        if event.event != "message" or not event.data:
            return None
        try:
            data = json.loads(event.data)
        except ValueError:
            log.warning("stream %s: ignoring an event that is not JSON: %.80r", self.queue, event.data)
            return None
        if not isinstance(data, dict) or "key" not in data or "value" not in data:
            return None
        leased = self.lease is not None and isinstance(data.get("count"), int)
        message = Message.from_dict(self.queue, data, self.lease if leased else None)
        if event.id:
            self.last_event_id = event.id
        if not leased:  # a broadcast message reaches one connection once: a repeat is a replay overlap
            if message.key in self._recent:
                return None
            self._recent[message.key] = None
            if len(self._recent) > DEDUPE_WINDOW:
                self._recent.popitem(last=False)
        return message


def _gap(data: str) -> Gap:
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    last, oldest = decoded.get("last_event_id"), decoded.get("oldest")
    return Gap(last if isinstance(last, str) else None, oldest if isinstance(oldest, str) else None)
