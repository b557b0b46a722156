"""Access control: the original acl.conf (host rules, HTTP Basic, the WebSocket auth cookie) and
bearer tokens scoped to queue patterns and rights.

acl.conf has one section per consumer kind, each optional:

    [rest:producer]          ; adds, and admin actions (purge, policy, control, redrive)
    hosts_allow = 127.0.0.1, 10.0.0.0/8
    hosts_deny = 10.0.0.12
    username = producer
    password = secret
    [rest:consumer]          ; GET, leases and acks, stats, pages
    [comet:consumer]         ; /c and /sse streams
    [websocket:consumer]     ; /ws (also accepts the cookie auth=user:pass; weak, kept for compatibility)

restmq/web/acl_file.py reads the file (and the RestMQ 2010 syntax: `all`, `192.168.0.` prefixes).
Addresses match exactly, networks by CIDR; a deny rule wins over an allow rule; a non-empty
allow list admits only what it lists. An IPv4 client seen on a dual-stack socket as ::ffff:a.b.c.d
is matched as a.b.c.d (and a rule written as an IPv4-mapped network as its IPv4 network). A
connection without an address (or with one that cannot be parsed) is refused by any section with
host rules, deny-only ones included: no rule can be shown to pass. The address is the one
restmq/web/peers.py settled (the peer, or what a proxy named by --forwarded-allow-ips forwarded).

A request authenticates with the section's Basic credentials or with a bearer token
(`Authorization: Bearer rmq_...`, or `?token=` where headers cannot be set, as with EventSource).

What a request needs depends on the mode (`--auth`, see docs/security.md#safe-defaults):
- tokens: a valid bearer token, always (and the ACL's host rules, when there is an ACL);
- acl: what the ACL asks (host rules, Basic credentials or a bearer token in their place);
- none: nothing; a bearer token that is presented is still checked;
- auto: as acl, and a bearer token once any token exists; once required, for good (latched), so
  that revoking the last token never opens a server that was closed.
"""

from __future__ import annotations

import base64
import functools
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from restmq.core.names import check_queue_name
from restmq.core.store import Store
from restmq.core.tokens import TokenRecord, split, verify
from restmq.errors import BackendUnavailable, BadRequest, Forbidden, RestMQError, Unauthorized
from restmq.web.addresses import Network, canonical

EVERY_ADDRESS = frozenset({ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")})
CATEGORIES = ("rest:producer", "rest:consumer", "comet:consumer", "websocket:consumer")
AUTH_MODES = ("tokens", "acl", "none", "auto")


@dataclass(frozen=True)
class AclRule:
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    username: str | None = None
    password: str | None = None

    def admits(self, address: str | None) -> bool:
        try:
            ip = canonical(ipaddress.ip_address(address or ""))
        except ValueError:  # no address (not a TCP peer), or not one: no host rule can be shown to pass
            return not self.allow and not self.deny
        if any(ip in net for net in self.deny):
            return False
        return not self.allow or any(ip in net for net in self.allow)

    @property
    def effective(self) -> bool:
        """Whether the rule keeps anyone out: an allow list, credentials, or a deny list of every address (any
        other deny list alone admits the world)."""
        return bool(self.allow) or self.username is not None or EVERY_ADDRESS.issubset(self.deny)

    def credentials_match(self, username: str, password: str) -> bool:
        if self.username is None:
            return False
        same_user = hmac.compare_digest(username.encode(), self.username.encode())
        same_password = hmac.compare_digest(password.encode(), (self.password or "").encode())
        return same_user and same_password


def open_categories(rules: dict[str, AclRule]) -> list[str]:
    """The categories that an ACL lets anyone use (no section, or one without an allow list or credentials)."""
    return [category for category in CATEGORIES if category not in rules or not rules[category].effective]


def _is_loopback(address: str | None) -> bool:
    try:
        return canonical(ipaddress.ip_address(address or "")).is_loopback  # ::ffff:127.0.0.1 too
    except ValueError:
        return False


def _basic(conn: HTTPConnection) -> tuple[str, str] | None:
    header = conn.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed Basic credentials", code="AUTH_INVALID") from None
        return (user, password) if sep else None
    cookie = conn.cookies.get("auth")
    if cookie and conn.scope["type"] == "websocket" and _cookie_counts(conn):
        user, sep, password = cookie.partition(":")
        return (user, password) if sep else None
    return None


def _cookie_counts(conn: HTTPConnection) -> bool:
    """A browser sends the cookie with every WebSocket any page opens to this host: it counts only from
    no page at all (no Origin), this server's own pages or listed origins. (browser.BrowserGuard refused
    other origins already, but --cors-origin '*' lets any page connect, without credentials.)"""
    if "origin" not in conn.headers:
        return True
    trusted: bool = conn.app.state.origins.trusts_credentials_of(conn.scope)
    return trusted


def _carries_credentials(conn: HTTPConnection) -> bool:
    """Cheaply, from the raw scope: an Authorization header, an auth cookie or a token parameter."""
    if b"token=" in conn.scope.get("query_string", b""):
        return True
    return any(name in (b"authorization", b"cookie") for name, _ in conn.scope["headers"])


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return conn.query_params.get("token")


class Access:
    """Decides each request by the mode (AUTH_MODES), the ACL rules and the token store."""

    def __init__(
        self, store: Store, acl: dict[str, AclRule] | None = None, cache_seconds: float = 5.0, mode: str = "auto"
    ) -> None:
        if mode not in AUTH_MODES:
            raise ValueError(f"unknown auth mode {mode!r}; use {', '.join(AUTH_MODES)}")
        self.store = store
        self.acl = {} if mode == "none" else (acl or {})
        self.mode = mode
        self._cache_seconds = cache_seconds
        self._tokens_checked_at = -cache_seconds - 1.0  # auto: look at the token list on the first request
        self._latched = mode == "tokens"  # auto: set once tokens are seen, never cleared
        self._records: dict[str, tuple[float, TokenRecord | None]] = {}

    async def check(self, conn: HTTPConnection, category: str, queue: str | None, right: str) -> TokenRecord | None:
        """Raise 401/403 unless the connection may use `right` on `queue`; return its token, if any."""
        if not self.acl and not _carries_credentials(conn) and not await self.tokens_required():
            return None  # an open server: nothing to check (the hot path)
        rule = self.acl.get(category)
        client = conn.client.host if conn.client else None
        if rule is not None and not rule.admits(client):
            raise Forbidden(f"{client} may not use {category}")
        token = _bearer(conn)
        if token:
            record = await self._record(token)
            if record is None:
                raise Unauthorized("invalid, expired or revoked token", code="TOKEN_INVALID")
            self._saw_tokens()  # a valid token proves that tokens exist
            if not record.allows(queue, right):
                raise Forbidden(f"this token has no {right} right on {queue or 'these queues'}")
            return record
        if self.mode == "tokens":
            raise Unauthorized("a bearer token is required")
        if self.mode == "none":
            return None
        credentials = _basic(conn)
        if rule is not None and rule.username is not None:
            if credentials is None or not rule.credentials_match(*credentials):
                denied = Unauthorized(f"{category} needs valid credentials")
                denied.challenge = 'Basic realm="restmq", Bearer realm="restmq"'
                raise denied
            return None
        if await self.tokens_required():
            raise Unauthorized("a bearer token is required")
        return None

    async def is_admin(self, conn: HTTPConnection) -> bool:
        """Whether the caller may see server-wide details such as backend addresses: it presents a token
        with the admin right or acl.conf's [rest:producer] credentials; or the server asks it for none
        (no token required, no producer credentials) and it connects from this machine's loopback interface."""
        try:
            record = await self.check(conn, CATEGORIES[0], None, "admin")
        except RestMQError:  # refused, or the token store cannot say: not an admin
            return False
        if record is not None:
            return True
        rule = self.acl.get(CATEGORIES[0])
        if rule is not None and rule.username is not None:
            return True  # check() passed on the section's credentials
        return _is_loopback(conn.client.host if conn.client else None)

    async def tokens_required(self) -> bool:
        """Whether a request that the ACL lets through still needs a bearer token."""
        if self._latched or self.mode != "auto":
            return self._latched
        if time.monotonic() - self._tokens_checked_at > self._cache_seconds:
            try:
                if await self.store.list_tokens():
                    self._latched = True
            except BackendUnavailable:
                pass  # no answer is no evidence; requests that reach the backend fail with 503 anyway
            self._tokens_checked_at = time.monotonic()
        return self._latched

    def _saw_tokens(self) -> None:
        if self.mode == "auto":
            self._latched = True

    async def refresh(self, token_ids: Sequence[str]) -> dict[str, TokenRecord]:
        """Read these tokens afresh, bypassing and updating the cache: the records of those not revoked."""
        raw = await self.store.load_tokens(token_ids)
        found = {token_id: TokenRecord.from_json(record) for token_id, record in raw.items()}
        now = time.monotonic()
        for token_id in token_ids:
            self._records[token_id] = (now, found.get(token_id))
        return found

    async def _record(self, token: str) -> TokenRecord | None:
        parts = split(token)
        if parts is None:
            return None
        token_id, secret = parts
        cached = self._records.get(token_id)
        if cached is None or time.monotonic() - cached[0] > self._cache_seconds:
            raw = await self.store.load_token(token_id)
            if len(self._records) >= 10_000:  # made-up token ids must not grow the cache without bound
                self._records.clear()
            cached = (time.monotonic(), TokenRecord.from_json(raw) if raw else None)
            self._records[token_id] = cached
        record = cached[1]
        return record if record is not None and verify(record, secret) else None


async def authorize(conn: HTTPConnection, category: str, queue: str | None, right: str) -> TokenRecord | None:
    access: Access = conn.app.state.access
    return await access.check(conn, category, queue, right)


PRODUCER, CONSUMER, COMET, WEBSOCKET = CATEGORIES
Endpoint = Callable[[Request], Awaitable[Response]]


def guard(category: str, right: str, handler: Endpoint) -> Endpoint:
    """`handler` behind access control for the queue in its path (validated first: 400 beats 401)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        queue = request.path_params.get("queue")
        if queue is not None:
            check_queue_name(queue)
        await authorize(request, category, queue, right)
        return await handler(request)

    return endpoint
