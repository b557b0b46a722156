"""Who is asking: the client address and scheme of each request, settled here once for everything
after it (the ACL, the per-client stream limit, redirects).

The client is the socket's peer. Only when the peer is one of the proxies named by
--forwarded-allow-ips are X-Forwarded-For and X-Forwarded-Proto believed: the client is then the
right-most X-Forwarded-For address that is not itself a named proxy (everything to its left is
what the client chose to send), and the scheme is the right-most X-Forwarded-Proto value (the one
the nearest proxy set). From any other peer these headers mean nothing, and Forwarded and
X-Real-IP are never read. A named proxy's header that cannot be parsed is a 400 (a WebSocket
handshake is closed with 1008 before it is accepted): a request never gets an address it did not
prove.

An IPv4-mapped peer (::ffff:127.0.0.1 on a dual-stack socket) is written as the IPv4 address it
carries (restmq/web/addresses.py), so that IPv4 rules match it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from restmq.errors import InvalidForwarded
from restmq.web.addresses import canonical_host, forwarded_address, parse_networks
from restmq.web.errors import error_response

# X-Forwarded-Proto value -> (the scheme of an HTTP request, of a WebSocket)
SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws"), "wss": ("https", "wss")}


class PeerAddress:
    """ASGI middleware: scope["client"] and scope["scheme"] as described in the module docstring."""

    def __init__(self, app: ASGIApp, proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.proxies = parse_networks(proxies)
        self._is_proxy = functools.lru_cache(maxsize=4096)(self._in_proxies)

    def _in_proxies(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")  # only HTTP and WebSocket scopes have one
        # the common case costs a lookup and a test: an IPv4 peer, no proxies named
        if client and (self.proxies or ":" in client[0]) and not await self._settle(scope, client, receive, send):
            return
        await self.app(scope, receive, send)

    async def _settle(self, scope: Scope, client: tuple[str, int], receive: Receive, send: Send) -> bool:
        """Settle scope["client"] and scope["scheme"]; False when the request was refused here."""
        if ":" in client[0]:  # only IPv6 addresses can be IPv4-mapped
            client = scope["client"] = (canonical_host(client[0]), client[1])
        if not (self.proxies and self._is_proxy(client[0])):
            return True
        try:
            self._believe_proxy(scope)
        except InvalidForwarded as exc:
            if scope["type"] == "http":
                await error_response(exc)(scope, receive, send)
            else:  # closed before it is accepted: the handshake is refused (403)
                await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
            return False
        return True

    def _believe_proxy(self, scope: Scope) -> None:
        forwarded_for: list[bytes] = []
        forwarded_proto: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"x-forwarded-proto":
                forwarded_proto.append(value)
        if forwarded_for:
            entries = b",".join(forwarded_for).decode("latin-1").split(",")
            for entry in reversed(entries):  # each proxy appends the address it got the request from
                address, port = forwarded_address(entry)
                scope["client"] = (str(address), port)
                if not self._is_proxy(str(address)):
                    break  # else every entry is a named proxy, and the left-most is the client
        if forwarded_proto:
            value = b",".join(forwarded_proto).decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            schemes = SCHEMES.get(value)
            if schemes is None:
                raise InvalidForwarded(f"X-Forwarded-Proto from a trusted proxy is {value[:16]!r}, not http or https")
            scope["scheme"] = schemes[scope["type"] == "websocket"]
