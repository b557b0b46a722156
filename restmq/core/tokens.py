"""Bearer tokens: `rmq_<id>_<secret>`, scoped to queue patterns and rights, stored hashed.

Only the SHA-256 of the secret is stored; the token is shown once, when it is created.
Patterns are shell-style (`orders.*`, `*`); rights are read, write and admin.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass

import orjson

RIGHTS = ("read", "write", "admin")
PREFIX = "rmq_"


@dataclass(frozen=True)
class TokenRecord:
    id: str
    digest: str  # sha256 hex of the secret
    queues: tuple[str, ...]
    rights: tuple[str, ...]
    created: float
    expires: float | None = None  # unix time
    note: str = ""

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, raw: str) -> TokenRecord:
        data = orjson.loads(raw)
        data["queues"], data["rights"] = tuple(data["queues"]), tuple(data["rights"])
        return cls(**data)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) >= self.expires

    def allows(self, queue: str | None, right: str) -> bool:
        """`right` on `queue` (None: any queue the token covers, for listings)."""
        if right not in self.rights and "admin" not in self.rights:
            return False
        if queue is None:
            return True
        return any(fnmatch.fnmatchcase(queue, pattern) for pattern in self.queues)

    def covers(self, queue: str) -> bool:
        return any(fnmatch.fnmatchcase(queue, pattern) for pattern in self.queues)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(
    queues: tuple[str, ...], rights: tuple[str, ...], ttl: float | None = None, note: str = ""
) -> tuple[str, TokenRecord]:
    """A fresh token (to show once) and the record to store."""
    unknown = set(rights) - set(RIGHTS)
    if unknown or not rights:
        raise ValueError(f"rights must be some of {', '.join(RIGHTS)}")
    if not queues:
        raise ValueError("a token needs at least one queue pattern")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    now = time.time()
    if ttl is not None and ttl <= 0:
        raise ValueError("a token's lifetime must be positive")
    record = TokenRecord(token_id, digest(secret), queues, rights, now, now + ttl if ttl is not None else None, note)
    return f"{PREFIX}{token_id}_{secret}", record


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != 12 or not secret:
        return None
    return token_id, secret


def verify(record: TokenRecord, secret: str) -> bool:
    return hmac.compare_digest(record.digest, digest(secret)) and not record.expired()
