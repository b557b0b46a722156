"""What every SQS operation shares: the request's context, SQS names, queue URLs and ARNs, and the queue's
attribute document (stored with the queue through QueueService.set_attributes).

SQS names (1-80 of A-Za-z0-9_- and an optional `.fifo` suffix) are RestMQ queue names as they are. RestMQ names
with `:`, `@` or other dots (dead-letter queues `<queue>:dead` among them) have no SQS URL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from restmq.core.service import QueueService
from restmq.web.sqs.errors import SqsError, invalid, missing, no_queue

ACCOUNT = "000000000000"  # as ElasticMQ and LocalStack: one account per server
REGION = "us-east-1"
SQS_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")

DEFAULTS = {
    "VisibilityTimeout": "30",
    "DelaySeconds": "0",
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "MaximumMessageSize": "262144",
    "SqsManagedSseEnabled": "false",
}


@dataclass
class Context:
    service: QueueService
    base_url: str  # scheme://host of this request, for queue URLs
    request_id: str = "-"
    # allows(queue, right): what the request's access key grants (under --auth tokens); listings show only the
    # queues it covers and a move checks its destinations. Without keys, everything the request reached.
    allows: Callable[[str, str], bool] = lambda queue, right: True


def is_sqs_name(name: str) -> bool:
    stem = name[:-5] if name.endswith(".fifo") else name
    return len(name) <= 80 and SQS_NAME.fullmatch(stem) is not None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not is_sqs_name(name):
        raise invalid(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length "
            "(a FIFO queue's name ends in .fifo)."
        )
    return name


def base_url(scheme: str, host_header: str | None, server: tuple[str, int] | None) -> str:
    if host_header and _HOST.fullmatch(host_header):
        return f"{scheme}://{host_header}"
    host, port = server or ("127.0.0.1", 8888)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def queue_url(ctx: Context, name: str) -> str:
    return f"{ctx.base_url}/{ACCOUNT}/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def name_from_url(url: object) -> str:
    """The queue a QueueUrl names: its last path segment (any host: clients keep URLs of other addresses)."""
    if not isinstance(url, str) or not url:
        raise missing("QueueUrl")
    path = urlsplit(url).path if "://" in url else url
    segments = [s for s in path.split("/") if s]
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[0].isdigit()):
        raise SqsError("InvalidAddress", f"The address {url[:200]} is not valid for this endpoint.", 404)
    name = segments[-1]
    if not is_sqs_name(name):
        raise no_queue()
    return name


def name_from_arn(arn: object) -> str:
    if not isinstance(arn, str):
        raise invalid("Value for parameter deadLetterTargetArn is invalid.")
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or not is_sqs_name(parts[5]):
        raise invalid(f"Invalid ARN {arn[:200]!r}: expected arn:aws:sqs:<region>:<account>:<queue name>.")
    return parts[5]


@dataclass
class QueueDoc:
    """A queue's SQS attributes as set (defaults are not stored), tags, DLQ sources and creation time."""

    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # queues whose RedrivePolicy names this one
    created: int = 0  # unix seconds
    modified: int = 0

    def get(self, name: str) -> str:
        return self.attributes.get(name, DEFAULTS.get(name, ""))

    def number(self, name: str) -> int:
        return int(self.get(name) or 0)

    def dump(self) -> str:
        return orjson.dumps(
            {"a": self.attributes, "t": self.tags, "s": self.sources, "c": self.created, "m": self.modified}
        ).decode()

    @classmethod
    def load(cls, raw: str) -> QueueDoc:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(data.get("a", {}), data.get("t", {}), data.get("s", []), data.get("c", 0), data.get("m", 0))


async def load(ctx: Context, name: str) -> QueueDoc | None:
    """The queue's document; a queue made through the REST API (it holds or held messages) gets a fresh one."""
    raw = await ctx.service.attributes(name)
    if raw is not None:
        return QueueDoc.load(raw)
    stats = (await ctx.service.stats([name]))[0]
    if stats.length or stats.delayed or stats.leased or stats.counters.get("added"):
        return QueueDoc()
    return None


async def require(ctx: Context, params: dict[str, Any]) -> tuple[str, QueueDoc]:
    name = name_from_url(params.get("QueueUrl"))
    doc = await load(ctx, name)
    if doc is None:
        raise no_queue()
    return name, doc


async def save(ctx: Context, name: str, doc: QueueDoc) -> None:
    doc.modified = int(time.time())
    doc.created = doc.created or doc.modified
    await ctx.service.set_attributes(name, doc.dump())


def whole_number(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"Value {str(value)[:20]} for parameter {name} is invalid. Reason: must be from {low} to {high}.")
    return value
