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

Addresses match exactly, networks by CIDR; a deny rule wins over an allow rule; a non-empty
allow list admits only what it lists. A request authenticates with the section's Basic
credentials or with a bearer token (`Authorization: Bearer rmq_...`, or `?token=` where headers
cannot be set, as with EventSource). Once any token exists, requests without credentials get 401.
"""

from __future__ import annotations

import base64
import configparser
import functools
import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from restmq.core.names import check_queue_name
from restmq.core.tokens import TokenRecord, split, verify
from restmq.errors import BackendUnavailable, BadRequest, Forbidden, RestMQError, Unauthorized
from restmq.storage.base import Store

CATEGORIES = ("rest:producer", "rest:consumer", "comet:consumer", "websocket:consumer")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AclRule:
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    username: str | None = None
    password: str | None = None

    def admits(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:  # unix socket or unknown peer: only an empty allow list admits it
            return not self.allow
        if any(ip in net for net in self.deny):
            return False
        return not self.allow or any(ip in net for net in self.allow)

    def credentials_match(self, username: str, password: str) -> bool:
        if self.username is None:
            return False
        same_user = hmac.compare_digest(username.encode(), self.username.encode())
        same_password = hmac.compare_digest(password.encode(), (self.password or "").encode())
        return same_user and same_password


def _networks(raw: str, path: str, section: str) -> tuple[Network, ...]:
    networks = []
    for item in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{path} [{section}]: {item!r} is not an address or CIDR network") from None
    return tuple(networks)


def load_acl(path: str | Path) -> dict[str, AclRule]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        read = parser.read(path)
    except configparser.Error as exc:  # no section header, a duplicate key, ...: still a ValueError
        raise ValueError(f"{path}: {' '.join(str(exc).split())}") from None
    if not read:
        raise ValueError(f"cannot read ACL file {path}")
    rules = {}
    for section in parser.sections():
        if section not in CATEGORIES:
            raise ValueError(f"{path}: unknown section [{section}]; use {', '.join(CATEGORIES)}")
        fields = dict(parser[section])
        unknown = set(fields) - {"hosts_allow", "hosts_deny", "username", "password"}
        if unknown:
            raise ValueError(f"{path} [{section}]: unknown keys {', '.join(sorted(unknown))}")
        if ("username" in fields) != ("password" in fields):
            raise ValueError(f"{path} [{section}]: username and password go together")
        rules[section] = AclRule(
            allow=_networks(fields.get("hosts_allow", ""), str(path), section),
            deny=_networks(fields.get("hosts_deny", ""), str(path), section),
            username=fields.get("username"),
            password=fields.get("password"),
        )
    return rules


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return bool((mapped or ip).is_loopback)


def _basic(conn: HTTPConnection) -> tuple[str, str] | None:
    header = conn.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed Basic credentials", code="AUTH_INVALID") from None
        return (user, password) if sep else None
    cookie = conn.cookies.get("auth")
    if cookie and conn.scope["type"] == "websocket":
        user, sep, password = cookie.partition(":")
        return (user, password) if sep else None
    return None


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
    def __init__(self, store: Store, acl: dict[str, AclRule] | None = None, cache_seconds: float = 5.0) -> None:
        self.store = store
        self.acl = acl or {}
        self._cache_seconds = cache_seconds
        self._tokens_exist: tuple[float, bool] = (0.0, False)
        self._records: dict[str, tuple[float, TokenRecord | None]] = {}

    async def check(self, conn: HTTPConnection, category: str, queue: str | None, right: str) -> TokenRecord | None:
        """Raise 401/403 unless the connection may use `right` on `queue`; return its token, if any."""
        if not self.acl and not _carries_credentials(conn) and not await self._tokens_required():
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
            self._tokens_exist = (time.monotonic(), True)  # a valid token proves that tokens exist
            if not record.allows(queue, right):
                raise Forbidden(f"this token has no {right} right on {queue or 'these queues'}")
            return record
        credentials = _basic(conn)
        if rule is not None and rule.username is not None:
            if credentials is None or not rule.credentials_match(*credentials):
                denied = Unauthorized(f"{category} needs valid credentials")
                denied.challenge = 'Basic realm="restmq", Bearer realm="restmq"'
                raise denied
            return None
        if await self._tokens_required():
            raise Unauthorized("a bearer token is required")
        return None

    async def is_admin(self, conn: HTTPConnection) -> bool:
        """Whether the caller may see server-wide details such as backend addresses: it presents a token
        with the admin right or acl.conf's [rest:producer] credentials; or the server asks it for none
        (no tokens, no producer credentials) and it connects from this machine's loopback interface."""
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

    async def _tokens_required(self) -> bool:
        checked_at, exist = self._tokens_exist
        if time.monotonic() - checked_at > self._cache_seconds:
            try:
                exist = bool(await self.store.list_tokens())
            except BackendUnavailable:
                pass  # keep the last answer; requests that reach the backend fail with 503 anyway
            self._tokens_exist = (time.monotonic(), exist)
        return exist

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
