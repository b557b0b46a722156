"""The HTTP calls of the RestMQ API, shared by the sync and the async client.

Each method of a client builds a :class:`Call` here (method, path, parameters, body and a parser
for the answer) and runs it on its own transport, so both clients send exactly the same requests
and read the answers the same way.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from restmq.client.errors import BadRequestError, from_response
from restmq.client.models import Control, Message, Overview, QueueStats
from restmq.core.names import QUEUE_NAME_PATTERN, QUEUE_NAME_RULE

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8888"
URL_ENV = "RESTMQ_URL"
TOKEN_ENV = "RESTMQ_TOKEN"
DEFAULT_TIMEOUT = 30.0  # seconds to wait for an answer (a long-poll adds its wait)
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STREAM_TIMEOUT = 60.0  # seconds a stream may stay silent (the server sends a heartbeat every 15 s)
DEFAULT_MAX_CONNECTIONS = 100
DEAD_SUFFIX = ":dead"
QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
EMPTY_CODES = ("QUEUE_EMPTY", "QUEUE_STOPPED")


def _version() -> str:
    try:
        return metadata.version("restmq")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0"


USER_AGENT = f"restmq-python/{_version()}"


def resolve_url(url: str | None) -> str:
    """The base URL: ``url``, else ``$RESTMQ_URL``, else http://127.0.0.1:8888 (no trailing slash)."""
    chosen = (url or os.environ.get(URL_ENV) or DEFAULT_URL).strip()
    if "://" not in chosen:
        chosen = "http://" + chosen
    return chosen.rstrip("/")


def resolve_token(token: str | None) -> str | None:
    """The bearer token: ``token``, else ``$RESTMQ_TOKEN``, else none."""
    chosen = token if token is not None else os.environ.get(TOKEN_ENV)
    return chosen or None


def base_headers(token: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def timeout(read: float, connect: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=connect)


def check_queue(queue: str) -> str:
    """Refuse a queue name the server would refuse, before it can reach a URL path."""
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise BadRequestError(f"invalid queue name {queue!r}: {QUEUE_NAME_RULE}", code="QUEUE_NAME_INVALID")
    return queue


def queue_of(key: str) -> str:
    """The queue of a message key ``<queue>:<n>``."""
    queue, sep, n = key.rpartition(":")
    if not sep or not n.isdigit():
        raise BadRequestError(f"invalid message key {key!r}: keys look like <queue>:<n>", code="PARAMETER_INVALID")
    return check_queue(queue)


def _q(name: str) -> str:
    return quote(name, safe=":@")


def encode_value(value: object) -> str:
    """A message value as text: str as is, bytes as UTF-8, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _seconds(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else repr(float(value))


def _options(delay: float | None, ttl: float | None, priority: int | None, group: str | None = None) -> dict[str, str]:
    options: dict[str, str] = {}
    if group is not None:
        options["group"] = group
    if delay:
        options["delay"] = _seconds(delay)
    if ttl:
        options["ttl"] = _seconds(ttl)
    if priority:
        options["priority"] = str(int(priority))
    return options


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str] | tuple[tuple[str, str], ...] = field(default_factory=dict)  # a tuple repeats names
    data: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0  # a long-poll: the answer may take this much longer
    accept: tuple[int, ...] = ()  # error statuses that are answers, not errors (GET /ready: 503)

    def finish(self, response: httpx.Response) -> T:
        """Raise the APIError of an error answer, else parse it."""
        if response.status_code >= 400 and response.status_code not in self.accept:
            raise from_response(response)
        return self.parse(response)


def _json(response: httpx.Response) -> Any:
    return response.json()


def _json_dict(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object from {response.request.url}, got {type(data).__name__}")
    return data


def _message_key(response: httpx.Response) -> str:
    return response.text.strip()


# -- producing -------------------------------------------------------------------------------


def add(
    queue: str,
    value: object,
    *,
    delay: float | None = None,
    ttl: float | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
    group: str | None = None,
) -> Call[str]:
    check_queue(queue)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    data = {"value": encode_value(value), **_options(delay, ttl, priority, group)}
    return Call("POST", f"/q/{_q(queue)}", _message_key, data=data, headers=headers)


def add_batch(
    queue: str,
    values: Iterable[object],
    *,
    delay: float | None = None,
    ttl: float | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
    group: str | None = None,
) -> Call[list[str]]:
    check_queue(queue)
    texts = [encode_value(value) for value in values]
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    body = json.dumps(texts, separators=(",", ":"), ensure_ascii=False).encode()

    def parse(response: httpx.Response) -> list[str]:
        return [str(key) for key in _json_dict(response)["keys"]]

    return Call(
        "POST", f"/q/{_q(queue)}", parse, params=_options(delay, ttl, priority, group), content=body, headers=headers
    )


# -- consuming -------------------------------------------------------------------------------


def get(
    queue: str,
    *,
    count: int | None,
    wait: float,
    lease: float | None,
    ack: Sequence[Message | str] = (),
    acked: dict[str, str] | None = None,
) -> Call[list[Message]]:
    """GET /q/<queue>: up to `count` messages (a list either way; empty when none is ready). With `ack` (a lease),
    the server acks those messages first; `acked` gets each one's outcome by key, from X-RestMQ-Ack."""
    check_queue(queue)
    params: dict[str, str] = {}
    if count is not None:
        params["count"] = str(int(count))
    if wait:
        params["wait"] = _seconds(wait)
    if lease is not None:
        params["lease"] = _seconds(lease)
    sent = [_ack_param(queue, message) for message in ack]

    def parse(response: httpx.Response) -> list[Message]:
        if acked is not None and sent:
            acked.update(_ack_outcomes(response, sent))
        if response.status_code == 204:
            return []
        data = response.json()
        items = data if isinstance(data, list) else [data]
        return [Message.from_dict(queue, item, lease) for item in items]

    query = (*params.items(), *(("ack", sent_as) for _, sent_as in sent)) if sent else params
    return Call("GET", f"/q/{_q(queue)}", parse, params=query, wait=float(wait or 0))


def _ack_param(queue: str, message: Message | str) -> tuple[str, str]:
    """The key of a message to ack on a lease, and what `ack=` sends for it: `<key>@<count>` for a delivered
    Message, so that the ack leaves a later delivery of it alone (as ack() sends `count=`)."""
    key = message.key if isinstance(message, Message) else message
    if queue_of(key) != queue:
        raise BadRequestError(f"{key!r} is not a message of {queue}: acks ride on a lease of their own queue")
    if isinstance(message, Message) and message.count > 0:
        return key, f"{key}@{message.count}"
    return key, key


def _ack_outcomes(response: httpx.Response, sent: Sequence[tuple[str, str]]) -> dict[str, str]:
    """key -> "ok" or the error code of its ack (LEASE_EXPIRED, LEASE_STALE, MESSAGE_NOT_FOUND), from X-RestMQ-Ack."""
    answered = response.headers.get("X-RestMQ-Ack", "")
    codes = dict(item.rpartition("=")[::2] for item in answered.split(", ") if item)
    return {key: codes.get(sent_as, "UNKNOWN") for key, sent_as in sent}


def _protocol(command: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(command, separators=(",", ":")).encode(), {"Content-Type": "application/json"}


def soft_get(queue: str) -> Call[Message | None]:
    check_queue(queue)
    body, headers = _protocol({"cmd": "get", "queue": queue})

    def parse(response: httpx.Response) -> Message | None:
        data = _json_dict(response)
        if "error" in data:
            if data.get("code") in EMPTY_CODES:
                return None
            raise from_response(response)
        return Message.from_dict(queue, data)

    return Call("POST", "/queue", parse, content=body, headers=headers)


def delete_message(key: str) -> Call[bool]:
    queue = queue_of(key)
    body, headers = _protocol({"cmd": "del", "queue": queue, "key": key})

    def parse(response: httpx.Response) -> bool:
        return bool(_json_dict(response).get("deleted"))

    return Call("POST", "/queue", parse, content=body, headers=headers)


def _settled(response: httpx.Response) -> int:
    return int(_json_dict(response)["count"])


def _target(message: Message | str, count: int | None) -> tuple[str, str, dict[str, str]]:
    if isinstance(message, Message):
        key = message.key
        if count is None and message.count > 0:
            count = message.count
    else:
        key = message
    queue = queue_of(key)
    params = {"count": str(int(count))} if count is not None else {}
    return queue, key, params


def ack(message: Message | str, *, count: int | None = None) -> Call[int]:
    queue, key, params = _target(message, count)
    return Call("DELETE", f"/q/{_q(queue)}/{_q(key)}", _settled, params=params)


def release(message: Message | str, *, count: int | None = None, delay: float = 0.0) -> Call[int]:
    queue, key, params = _target(message, count)
    if delay:
        params["delay"] = _seconds(delay)
    return Call("POST", f"/q/{_q(queue)}/{_q(key)}/release", _settled, params=params)


def extend(message: Message | str, lease: float, *, count: int | None = None) -> Call[int]:
    queue, key, params = _target(message, count)
    params["lease"] = _seconds(lease)
    return Call("POST", f"/q/{_q(queue)}/{_q(key)}/extend", _settled, params=params)


# -- queues, settings, statistics ------------------------------------------------------------


def purge(queue: str) -> Call[int]:
    check_queue(queue)
    return Call("DELETE", f"/q/{_q(queue)}", lambda r: int(_json_dict(r)["status"]))


def _page_params(after: str | None, limit: int | None) -> dict[str, str]:
    params = {"after": after} if after else {}
    if limit is not None:
        params["limit"] = str(int(limit))
    return params


def queue_page(after: str | None = None, limit: int | None = None) -> Call[tuple[list[str], str | None]]:
    """One page of GET /q/: the names and the `after` of the next page (None on the last, and from servers that
    do not page)."""

    def parse(response: httpx.Response) -> tuple[list[str], str | None]:
        reply = _json_dict(response)
        following = reply.get("next")
        return [str(name) for name in reply["queues"]], str(following) if following else None

    return Call("GET", "/q/", parse, params=_page_params(after, limit))


def policy(queue: str, value: str | None = None) -> Call[str]:
    check_queue(queue)
    data = {"policy": value} if value is not None else None
    return Call("POST" if data else "GET", f"/p/{_q(queue)}", lambda r: str(_json_dict(r)["value"]), data=data)


def control(queue: str, *, status: str | None = None, max_deliveries: int | None = None) -> Call[Control]:
    check_queue(queue)
    data: dict[str, str] = {}
    if status is not None:
        data["status"] = status
    if max_deliveries is not None:
        data["max_deliveries"] = str(int(max_deliveries))

    def parse(response: httpx.Response) -> Control:
        reply = _json_dict(response)
        return Control(str(reply["queue"]), str(reply["status"]), int(reply.get("max_deliveries", 0)))

    return Call("POST" if data else "GET", f"/control/{_q(queue)}", parse, data=data or None)


def stats(queue: str) -> Call[QueueStats]:
    check_queue(queue)
    return Call("GET", f"/stats/{_q(queue)}", lambda r: QueueStats.from_dict(_json_dict(r)))


def stats_page(after: str | None = None, limit: int | None = None) -> Call[Overview]:
    """One page of GET /stats/; its ``next`` is the `after` of the following page."""

    def parse(response: httpx.Response) -> Overview:
        reply = _json_dict(response)
        stats = [QueueStats.from_dict(item) for item in reply.get("queues", [])]
        following = reply.get("next")
        return Overview(stats, reply.get("nodes"), str(following) if following else None)

    return Call("GET", "/stats/", parse, params=_page_params(after, limit))


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError("limit must be 1 or more (or None: every queue)")


def remaining(limit: int | None, found: int) -> int | None:
    """How many more names a walk over pages may take (None: no limit)."""
    return None if limit is None else limit - found


def redrive(queue: str) -> Call[int]:
    dead = queue if queue.endswith(DEAD_SUFFIX) else queue + DEAD_SUFFIX
    check_queue(dead)
    return Call("POST", f"/q/{_q(dead)}/redrive", lambda r: int(_json_dict(r)["moved"]))


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", _json_dict)


def ready() -> Call[bool]:
    def parse(response: httpx.Response) -> bool:
        return response.status_code == 200

    return Call("GET", "/ready", parse, accept=(503,))


def stream_path(queue: str) -> str:
    return f"/sse/{_q(check_queue(queue))}"


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... up to cap (attempt counts from 1)."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def jittered_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: a random time between 0 and ``retry_delay`` (attempt counts
    from 1), so clients that failed together (a server restart) come back spread out, not all at once."""
    return random.uniform(0.0, retry_delay(attempt, base, cap))
