"""Receipt handles: opaque to clients, one per receive.

A handle is the base64url of `<queue> <n> <delivery count> <nonce>`: the RestMQ queue that holds the message
(a dead-letter queue's messages are received through the SQS queue its RedrivePolicy names), the message number,
its delivery count at this receive, and random bytes so that no two receives hand out the same handle. Deletes and
visibility changes pass the count as Store.settle's `expected_count`: a handle from an earlier receive is stale and
cannot touch a message delivered again since. Handles carry no secret: knowing one grants nothing that the
caller's rights on the queue do not.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import NamedTuple

from restmq.core.names import check_queue_name
from restmq.errors import InvalidQueueName
from restmq.web.sqs.errors import SqsError

MAX_HANDLE = 1024  # characters: a queue name (200) and three short fields, base64-encoded, fit easily


class Receipt(NamedTuple):
    queue: str
    n: int
    deliveries: int  # the message's delivery count at this receive

    @property
    def key(self) -> str:
        """The message's RestMQ key, as Message.key spells it."""
        return f"{self.queue}:{self.n}"


def encode(queue: str, n: int, count: int) -> str:
    raw = f"{queue} {n} {count} {secrets.token_hex(4)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(handle: object) -> Receipt:
    """The receipt a handle names; ReceiptHandleIsInvalid for anything this server did not hand out."""
    if not isinstance(handle, str) or not 0 < len(handle) <= MAX_HANDLE:
        raise _invalid(handle)
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
        queue, n, count, _nonce = raw.split(" ")
        check_queue_name(queue)
        if not (n.isdigit() and count.isdigit() and len(n) <= 15 and len(count) <= 9):
            raise ValueError(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidQueueName):
        raise _invalid(handle) from None
    return Receipt(queue, int(n), int(count))


def _invalid(handle: object) -> SqsError:
    shown = handle[:80] if isinstance(handle, str) else type(handle).__name__
    return SqsError("ReceiptHandleIsInvalid", f"The input receipt handle {shown!r} is not a valid receipt handle.")
