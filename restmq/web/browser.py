"""Requests a browser makes for a web page the user did not write: refused unless allowed.

Two checks run before anything else, from the raw ASGI headers (no Request object: they sit on the
hot path):

1. **Host** (DNS rebinding; hosts.HostAllowlist says which Hosts are served): any other is a 421.
   A request with no Host (HTTP/1.0) is served.
2. **Cross-site** (a page's form, script tag, fetch() or WebSocket aimed at this server). A request
   whose browser says it comes from elsewhere (`Origin` not this server's own and not a --cors-origin,
   or `Sec-Fetch-Site: cross-site`/`same-site` without such an origin) is a 403, except GET and HEAD
   of the pages and files that change nothing (PUBLIC below; the dashboard pages then come without
   their data) and CORS preflights. Requests without these headers (curl, scripts, the client
   library) are not a browser's and pass.

docs/security.md#browser-borne-requests gives the threat model and every rule with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from restmq.errors import CrossSiteRequest, HostNotAllowed, RestMQError
from restmq.web.hosts import HostAllowlist, split_authority
from restmq.web.http import raw_header

# Pages and files a link from another site may open (GET and HEAD): they change nothing, and the
# dashboard pages come without their data (CROSS_SITE marks the request; the page's own script loads
# the data, same-origin). "/" only without a query string: GET /?queue=q takes a message.
PUBLIC = frozenset({"/ui", "/docs", "/openapi.json", "/asyncapi.json", "/health", "/ready"})
PUBLIC_PREFIXES = ("/ui/static/", "/j/")
CROSS_SITE = "restmq.cross_site"  # scope key: served although cross-site, so show no data
DEFAULT_PORTS = {"http": "80", "https": "443"}

# Headers every response carries, and those of HTML pages (stamped by observe.RequestContext, which
# already rebuilds each response's header list). The CSP allows what the pages use: their own scripts
# and styles (no inline script anywhere), inline styles, a data: favicon.
NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
)


def origin_of(url: str) -> str:
    """scheme://authority of a URL (a Referer), in lower case."""
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return f"{scheme}{sep}{rest[:end]}".lower()


class OriginPolicy:
    """Which web origins may use this server: its own, and those given with --cors-origin (`*`: any,
    but never with credentials)."""

    def __init__(self, cors_origins: Iterable[str]) -> None:
        origins = [origin.strip().lower().rstrip("/") for origin in cors_origins]
        self.any = "*" in origins
        self.listed = frozenset(origin for origin in origins if origin != "*")

    def own(self, origin: str, host: bytes | None, tls: bool) -> bool:
        """Same host and port as the request's Host, over http or https (a TLS proxy may stand in front);
        over a TLS connection only an https page counts."""
        scheme, sep, authority = origin.partition("://")
        if not sep or host is None or scheme not in DEFAULT_PORTS or (tls and scheme != "https"):
            return False
        mine, theirs = split_authority(host.decode("latin-1")), split_authority(authority)
        if mine is None or theirs is None or mine[0] != theirs[0]:
            return False
        default = DEFAULT_PORTS[scheme]
        return (mine[1] or default) == (theirs[1] or default)

    def trusted(self, origin: str, host: bytes | None, tls: bool) -> bool:
        """Its own or listed: trusted with credentials the browser adds by itself (the auth cookie)."""
        origin = origin.lower()
        return origin in self.listed or self.own(origin, host, tls)

    def allows(self, origin: str, host: bytes | None, tls: bool) -> bool:
        return self.any or self.trusted(origin, host, tls)

    def trusts_credentials_of(self, scope: Scope) -> bool:
        """Whether credentials a browser adds by itself (the WebSocket auth cookie) count for this
        connection: from no page at all (no Origin: not a browser), its own pages, or a listed origin."""
        origin = raw_header(scope, b"origin")
        return origin is None or self.trusted(origin.decode("latin-1"), raw_header(scope, b"host"), _is_tls(scope))


def _is_tls(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")


def _public(scope: Scope) -> bool:
    """GET/HEAD of a page or file that holds no message, or a CORS preflight (it reaches nothing)."""
    if scope["type"] != "http":
        return False
    method = scope["method"]
    if method == "OPTIONS":
        return True
    if method != "GET" and method != "HEAD":
        return False
    path: str = scope["path"]
    if path == "/":
        return not scope["query_string"]
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


class BrowserGuard:
    """The Host allowlist and the cross-site refusal, before any other middleware or handler."""

    def __init__(self, app: ASGIApp, hosts: HostAllowlist, origins: OriginPolicy) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        host = origin = site = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                site = value
        if host and not self.hosts.allows(host):  # granian gives b"" for no Host
            shown = host.decode("latin-1")[:100]
            refusal: RestMQError = HostNotAllowed(
                f"host {shown!r} is not served here; name it with --allowed-hosts (DNS rebinding protection)"
            )
        elif (origin is not None or site is not None) and not self._allowed(scope, host, origin, site):
            if _public(scope):
                scope[CROSS_SITE] = True
                await self.app(scope, receive, send)
                return
            source = repr(origin.decode("latin-1")[:100]) if origin is not None else "another site"
            refusal = CrossSiteRequest(
                f"cross-site request refused: a page from {source} may not use this server; "
                "allow its origin with --cors-origin"
            )
        else:
            await self.app(scope, receive, send)
            return
        await refuse(scope, receive, send, refusal)

    def _allowed(self, scope: Scope, host: bytes | None, origin: bytes | None, site: bytes | None) -> bool:
        if site == b"same-origin" or site == b"none":  # the browser itself says: this origin, or the user
            return True
        if self.origins.any:
            return True
        if origin is not None:
            return self.origins.allows(origin.decode("latin-1"), host, _is_tls(scope))
        # No Origin (a <script>, <img> or navigation GET): the Referer names the page, when it was sent.
        referer = raw_header(scope, b"referer")
        return referer is not None and self.origins.allows(origin_of(referer.decode("latin-1")), host, _is_tls(scope))


async def refuse(scope: Scope, receive: Receive, send: Send, exc: RestMQError) -> None:
    """The JSON error. A WebSocket handshake gets the same HTTP answer where the server can send one
    (uvicorn), else a close before accepting, which the server answers with a 403."""
    body = orjson.dumps(exc.to_dict(), option=orjson.OPT_APPEND_NEWLINE)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
