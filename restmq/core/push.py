"""Push subscriptions (docs/push.md): what one holds, the rules its fields follow, and the retry schedule.

A subscription is stored as a flat hash of strings (storage/push.py keeps it beside its queue); this module turns
a request's JSON into those fields and the fields back into a Subscription. The secret is write-only: it goes into
the backend and to the signer, never into a reply (`Subscription.public()` shows only whether there is one).
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from restmq.errors import InvalidParameter, MissingField

SECRET_PREFIX = "whsec_"
MAX_URL = 2048
# field: (default, lowest, highest)
TIMEOUT = (10.0, 0.1, 60.0)  # seconds for one delivery, connect to last byte of the reply
MAX_IN_FLIGHT = (10, 1, 1000)  # deliveries at once, over every server process
RATE = (0.0, 0.0, 10_000.0)  # deliveries per second over every server process; 0: unlimited
MAX_ATTEMPTS = (10, 1, 100)  # deliveries of one message before it is dead-lettered
BACKOFF_BASE = (1.0, 0.01, 3600.0)  # seconds: the first retry's ceiling
BACKOFF_CAP = (300.0, 0.01, 86_400.0)  # seconds: no retry waits longer
COUNTERS = ("delivered", "failed", "dead", "failing")


@dataclass(frozen=True)
class Subscription:
    queue: str
    url: str
    secret: str = ""  # "whsec_<base64>", or "" (deliveries are not signed)
    timeout: float = TIMEOUT[0]
    max_in_flight: int = MAX_IN_FLIGHT[0]
    rate: float = RATE[0]
    max_attempts: int = MAX_ATTEMPTS[0]
    backoff_base: float = BACKOFF_BASE[0]
    backoff_cap: float = BACKOFF_CAP[0]
    paused: bool = False
    delivered: int = 0  # 2xx replies
    failed: int = 0  # attempts that failed (any status but 2xx, a timeout, a refused connection or address)
    dead: int = 0  # messages dead-lettered after max_attempts
    failing: int = 0  # attempts failed in a row since the last success
    last_status: int | None = None
    last_error: str = ""
    last_at: int = 0  # unix ms of the last attempt's end

    def fields(self) -> dict[str, str]:
        """The settings as the backend stores them (counters are the backend's own)."""
        return {
            "url": self.url,
            "secret": self.secret,
            "timeout": repr(self.timeout),
            "max_in_flight": str(self.max_in_flight),
            "rate": repr(self.rate),
            "max_attempts": str(self.max_attempts),
            "backoff_base": repr(self.backoff_base),
            "backoff_cap": repr(self.backoff_cap),
        }

    def public(self, retrying: int | None = None) -> dict[str, Any]:
        """The reply shape of GET /push/: everything but the secret, which shows as true or false."""
        shown: dict[str, Any] = {
            "queue": self.queue,
            "url": self.url,
            "secret": bool(self.secret),
            "timeout": self.timeout,
            "max_in_flight": self.max_in_flight,
            "rate": self.rate,
            "max_attempts": self.max_attempts,
            "backoff": {"base": self.backoff_base, "cap": self.backoff_cap},
            "paused": self.paused,
            "delivered": self.delivered,
            "failed": self.failed,
            "failing": self.failing,
            "dead": self.dead,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_at": self.last_at,
        }
        if retrying is not None:
            shown["retrying"] = retrying
        return shown

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before the retry that follows failed attempt number `attempt` (1 = the first delivery):
        exponential with full jitter, uniform in [0, min(cap, base * 2^(attempt-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 60))
        return (rng or random).uniform(0.0, ceiling)


def _number(raw: Mapping[str, Any], name: str, bounds: tuple[float, float, float], whole: bool = False) -> float:
    value = raw.get(name)
    if value is None:
        return bounds[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        raise InvalidParameter(f"{name} must be a {'whole ' if whole else ''}number")
    if not bounds[1] <= value <= bounds[2]:
        raise InvalidParameter(f"{name} must be between {bounds[1]:g} and {bounds[2]:g}")
    return float(value)


def check_secret(secret: Any) -> str:
    """A Standard Webhooks secret: `whsec_` then the base64 of 24 to 64 random bytes."""
    if secret is None or secret == "":
        return ""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidParameter("secret must be whsec_<base64 of 24 to 64 bytes> (Standard Webhooks)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("secret must be whsec_<base64 of 24 to 64 bytes> (Standard Webhooks)") from None
    if not 24 <= len(key) <= 64:
        raise InvalidParameter("secret must be whsec_<base64 of 24 to 64 bytes> (Standard Webhooks)")
    return secret


def check_url(url: Any) -> str:
    """An absolute http(s) URL with a host, no user info (it would be a secret shown back) and no fragment."""
    if not isinstance(url, str) or not url:
        raise MissingField("url is required")
    if len(url) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidParameter(f"url must be at most {MAX_URL} printable characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidParameter("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter("url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidParameter("url must not hold user info or a fragment (use the secret to authenticate)")
    return url


def parse_request(queue: str, raw: Any) -> Subscription:
    """The subscription a POST /push/<queue> body asks for; InvalidParameter names the first bad field."""
    if not isinstance(raw, dict):
        raise InvalidParameter("the body must be a JSON object with at least url")
    unknown = sorted(set(raw) - {"url", "secret", "timeout", "max_in_flight", "rate", "max_attempts", "backoff"})
    if unknown:
        raise InvalidParameter(f"unknown field {unknown[0]!r}")
    backoff = raw.get("backoff")
    backoff = {} if backoff is None else backoff
    if not isinstance(backoff, dict) or set(backoff) - {"base", "cap"}:
        raise InvalidParameter('backoff must be {"base": seconds, "cap": seconds}')
    base, cap = _number(backoff, "base", BACKOFF_BASE), _number(backoff, "cap", BACKOFF_CAP)
    if cap < base:
        raise InvalidParameter("backoff cap must be at least its base")
    return Subscription(
        queue=queue,
        url=check_url(raw.get("url")),
        secret=check_secret(raw.get("secret")),
        timeout=_number(raw, "timeout", TIMEOUT),
        max_in_flight=int(_number(raw, "max_in_flight", MAX_IN_FLIGHT, whole=True)),
        rate=_number(raw, "rate", RATE),
        max_attempts=int(_number(raw, "max_attempts", MAX_ATTEMPTS, whole=True)),
        backoff_base=base,
        backoff_cap=cap,
    )


def from_fields(queue: str, fields: Mapping[str, str]) -> Subscription:
    """A stored subscription (fields written by `Subscription.fields` and the delivery counters)."""

    def num(name: str, default: float) -> float:
        try:
            return float(fields.get(name) or default)
        except ValueError:
            return default

    status = fields.get("last_status")
    return Subscription(
        queue=queue,
        url=fields.get("url", ""),
        secret=fields.get("secret", ""),
        timeout=num("timeout", TIMEOUT[0]),
        max_in_flight=int(num("max_in_flight", MAX_IN_FLIGHT[0])),
        rate=num("rate", RATE[0]),
        max_attempts=int(num("max_attempts", MAX_ATTEMPTS[0])),
        backoff_base=num("backoff_base", BACKOFF_BASE[0]),
        backoff_cap=num("backoff_cap", BACKOFF_CAP[0]),
        paused=fields.get("paused") == "1",
        delivered=int(num("delivered", 0)),
        failed=int(num("failed", 0)),
        dead=int(num("dead", 0)),
        failing=int(num("failing", 0)),
        last_status=int(status) if status and status.isdigit() else None,
        last_error=fields.get("last_error", ""),
        last_at=int(num("last_at", 0)),
    )


@dataclass(frozen=True)
class Outcome:
    """What the end of some deliveries records on their subscription (push_done.lua)."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    status: int | None = None  # the last reply's status, when there was one
    error: str | None = None  # None: left as it is; "": cleared
    pause: bool = False
    success: bool | None = None  # True resets the run of failures, False extends it, None leaves it


class PushStore(Protocol):
    """What push delivery asks of a backend beyond the Store protocol. Subscriptions live with their queue
    (its hash slot); the in-flight and rate limits are kept there too, so they hold over every server process."""

    async def save_push(self, queue: str, fields: Mapping[str, str]) -> None:
        """Create or update a subscription's settings and resume it (its counters stay)."""
        ...

    async def load_push(self, queue: str) -> dict[str, str] | None:
        """A subscription's stored fields, or None."""
        ...

    async def list_push(self) -> dict[str, dict[str, str]]:
        """Every subscription's stored fields, by queue (on a ring, from every live node)."""
        ...

    async def delete_push(self, queue: str) -> bool:
        """Remove a subscription; True if there was one."""
        ...

    async def reserve_push(self, queue: str, want: int, hold_ms: int, owner: str) -> tuple[list[str], int]:
        """Up to `want` delivery slots within the subscription's max_in_flight and rate, held for `hold_ms`
        unless given back; and the ms until the rate allows another (0: the rate is not what limits)."""
        ...

    async def settle_push(self, queue: str, slots: Sequence[str], refund: int, outcome: Outcome) -> None:
        """Give back slots (`refund` of them unused: their rate tokens return too) and record an outcome."""
        ...

    async def dead_letter_push(self, queue: str, n: int, count: int, status: int | None, error: str) -> bool:
        """Move leased message n (delivered `count` times) to `<queue>:dead` with the last status and error in
        its history. False when it is no longer leased with that count (nothing changed)."""
        ...
