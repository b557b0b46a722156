"""Bearer tokens: `rmq_<id>_<secret>`, scoped to queue patterns and rights, stored hashed.

Only the SHA-256 of the secret is stored; the token is shown once, when it is created.
Patterns are shell-style (`orders.*`, `*`); rights are read, write and admin.

An SQS access key (`restmq token create --sqs`) is a record of the same kind whose id is the access key
id (`RMQ` + 17 characters of A-Z2-7, 20 in all, as AWS's look) and which keeps its secret access key
itself (`sqs_secret`): Signature V4 needs the secret on the verifying side, a hash would not do
(docs/security.md#sqs-access-keys). Its `digest` is empty, so it never works as a bearer token.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field

import orjson

RIGHTS = ("read", "write", "admin")
PREFIX = "rmq_"
ACCESS_KEY_PREFIX = "RMQ"
ACCESS_KEY_LENGTH = 20


@dataclass(frozen=True)
class TokenRecord:
    id: str
    digest: str  # sha256 hex of the secret
    queues: tuple[str, ...]
    rights: tuple[str, ...]
    created: float
    expires: float | None = None  # unix time
    note: str = ""
    sqs_secret: str | None = field(default=None, repr=False)  # SQS access keys only; never shown

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, raw: str) -> TokenRecord:
        data = orjson.loads(raw)
        data["queues"], data["rights"] = tuple(data["queues"]), tuple(data["rights"])
        known = cls.__dataclass_fields__  # a field added by a newer version is left aside, not a crash
        return cls(**{name: value for name, value in data.items() if name in known})

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


def new_sqs_key(
    queues: tuple[str, ...], rights: tuple[str, ...], ttl: float | None = None, note: str = ""
) -> tuple[str, str, TokenRecord]:
    """A fresh SQS access key id, its secret access key (to show once) and the record to store."""
    _, bearer_like = new_token(queues, rights, ttl, note)  # the same checks of queues, rights and ttl
    random_part = base64.b32encode(secrets.token_bytes(15)).decode()[: ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX)]
    key_id, secret = ACCESS_KEY_PREFIX + random_part, secrets.token_urlsafe(30)  # 40 characters, as AWS's
    record = TokenRecord(key_id, "", queues, rights, bearer_like.created, bearer_like.expires, note, secret)
    return key_id, secret, record


def is_access_key(text: str) -> bool:
    """Whether `text` has the shape of an SQS access key id (a cheap refusal before any backend read)."""
    return (
        len(text) == ACCESS_KEY_LENGTH
        and text.startswith(ACCESS_KEY_PREFIX)
        and text.isascii()
        and text.isalnum()
        and text.isupper()
    )


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
