"""One delivery attempt: resolve the target, check every address (allow.py), POST to the checked address.

The name is resolved once, here; the request then goes to that address with the name in `Host` and as the TLS
server name (SNI and certificate check), so DNS cannot answer differently between the check and the connection
(rebinding). Redirects are not followed (a 3xx is a failure), proxies from the environment are not used, and at
most MAX_REPLY bytes of a reply are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from restmq.core.model import Message
from restmq.core.push import Subscription
from restmq.errors import PushTargetNotAllowed
from restmq.push.allow import Address, AllowList
from restmq.push.signing import sign

MAX_REPLY = 64 * 1024  # bytes of a reply read at most (then the connection is closed)
USER_AGENT = "RestMQ-Push/1"


@dataclass(frozen=True)
class Attempt:
    status: int | None  # the reply's status; None when there was no reply
    error: str  # "" on success; else what went wrong, without the URL
    refused: bool = False  # the target's address is not allowed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def content_type(value: str) -> str:
    """Messages carry no media type: a value that is a JSON object or array goes as application/json."""
    if value[:1] in ("{", "["):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
        else:
            return "application/json"
    return "text/plain; charset=utf-8"


def headers(sub: Subscription, message: Message, body: bytes, now: float | None = None) -> dict[str, str]:
    """The delivery's headers; `webhook-id` is the message key: the same for every attempt of one message."""
    timestamp = int(time.time() if now is None else now)
    found = {
        "content-type": content_type(message.value),
        "user-agent": USER_AGENT,
        "restmq-queue": message.queue,
        "restmq-key": message.key,
        "restmq-delivery-count": str(message.count),
        "webhook-id": message.key,
        "webhook-timestamp": str(timestamp),
    }
    if sub.secret:
        found["webhook-signature"] = sign(sub.secret, message.key, timestamp, body)
    return found


async def resolve(host: str, port: int) -> list[Address]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in seen:
            seen.append(address)
    return seen


class Sender:
    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # an HTTP(S)_PROXY would connect to the target itself, past the address check
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, sub: Subscription, message: Message) -> Attempt:
        """POST the message; every failure is an Attempt, never an exception (but cancellation)."""
        try:
            async with asyncio.timeout(sub.timeout):
                return await self._send(sub, message)
        except TimeoutError:
            return Attempt(None, f"timed out after {sub.timeout:g}s")
        except PushTargetNotAllowed as exc:
            return Attempt(None, exc.message, refused=True)
        except (httpx.HTTPError, OSError) as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:300])

    async def _send(self, sub: Subscription, message: Message) -> Attempt:
        parts = urlsplit(sub.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.allow.check_url(sub.url)  # the rules may have changed since the subscription was saved
        addresses = await resolve(host, port)
        self.allow.check_addresses(parts.scheme, host, addresses)
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        body = message.value.encode()
        sent = headers(sub, message, body)
        sent["host"] = parts.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self.client.build_request(
            "POST", target, content=body, headers=sent, extensions=extensions, timeout=sub.timeout
        )
        reply = await self.client.send(request, stream=True)
        try:
            read = 0
            async for chunk in reply.aiter_raw():
                read += len(chunk)
                if read >= MAX_REPLY:
                    break
        finally:
            await reply.aclose()
        if 200 <= reply.status_code < 300:
            return Attempt(reply.status_code, "")
        return Attempt(reply.status_code, f"HTTP {reply.status_code}")
