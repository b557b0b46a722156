"""Queue attributes: which may be set and to what, how they map onto RestMQ's queue settings, and what
GetQueueAttributes reads.

VisibilityTimeout, DelaySeconds, ReceiveMessageWaitTimeSeconds and MessageRetentionPeriod are applied by the SQS
operations (lease, delay, long-poll wait, ttl of each sent message); RedrivePolicy's maxReceiveCount is the queue's
max_deliveries, whose dead letters go to `<queue>:dead`; the SQS queue its deadLetterTargetArn names receives them
(messages.receive reads `<source>:dead` of each source queue). Others are kept and echoed.
"""

from __future__ import annotations

from typing import Any

import orjson

from restmq.web.sqs import context
from restmq.web.sqs.context import Context, QueueDoc
from restmq.web.sqs.errors import SqsError, invalid

# name -> (lowest, highest) for the whole-number attributes
RANGES = {
    "VisibilityTimeout": (0, 43_200),
    "DelaySeconds": (0, 900),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "MaximumMessageSize": (1024, 1_048_576),
    "KmsDataKeyReusePeriodSeconds": (60, 86_400),
}
KEPT = frozenset(
    {"Policy", "RedriveAllowPolicy", "KmsMasterKeyId", "SqsManagedSseEnabled", "DeduplicationScope",
     "FifoThroughputLimit", "ContentBasedDeduplication"}
)  # fmt: skip
COUNTED = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
READ_ONLY = frozenset({*COUNTED, "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn", "FifoQueue"})


def check(name: str, value: object, *, fifo: bool, max_value: int) -> str:
    """The attribute's value as stored, or InvalidAttributeName / InvalidAttributeValue."""
    if not isinstance(value, str):
        raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
    if name in RANGES:
        low, high = RANGES[name]
        if name == "MaximumMessageSize":
            high = min(high, max_value)
        if not (value.isdigit() and low <= int(value) <= high):
            raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}: from {low} to {high}.")
        return str(int(value))
    if name == "ContentBasedDeduplication" and not fifo:
        raise SqsError("InvalidAttributeName", "Unknown Attribute ContentBasedDeduplication (FIFO queues only).")
    if name in ("ContentBasedDeduplication", "SqsManagedSseEnabled") and value.lower() not in ("true", "false"):
        raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}: true or false.")
    if name == "RedrivePolicy" or name in KEPT:
        return value
    raise SqsError("InvalidAttributeName", f"Unknown Attribute {name[:100]}.")


def settable(params: dict[str, Any], name: str, *, creating: bool, max_value: int) -> dict[str, str]:
    raw = params.get("Attributes") or {}
    if not isinstance(raw, dict):
        raise invalid("Attributes must be a map of attribute names to values.")
    fifo = name.endswith(".fifo")
    if "FifoQueue" in raw:
        if not creating:
            raise SqsError("InvalidAttributeName", "FifoQueue can only be set when the queue is created.")
        if str(raw["FifoQueue"]).lower() != str(fifo).lower():
            raise invalid("The name of a FIFO queue can only include ... and must end with the .fifo suffix.")
    return {k: check(k, v, fifo=fifo, max_value=max_value) for k, v in raw.items() if k != "FifoQueue"}


async def apply_redrive(ctx: Context, name: str, doc: QueueDoc, policy: str | None) -> None:
    """Make `policy` (a RedrivePolicy value, or None/"" to remove it) the queue's: its maxReceiveCount becomes the
    queue's max_deliveries, and the DLQ records this queue as a source (to receive its dead letters)."""
    old_target = _target(doc.attributes.get("RedrivePolicy"))
    target, max_receive = None, 0
    if policy:
        try:
            parsed = orjson.loads(policy)
            target = context.name_from_arn(parsed["deadLetterTargetArn"])
            max_receive = int(parsed["maxReceiveCount"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise invalid(
                "Value for parameter RedrivePolicy is invalid: deadLetterTargetArn, maxReceiveCount."
            ) from None
        if not 1 <= max_receive <= 1000:
            raise invalid("Value for parameter RedrivePolicy is invalid: maxReceiveCount from 1 to 1000.")
        if not ctx.allows(target, "admin"):  # the DLQ's document records its sources: a change of that queue
            raise SqsError("AccessDenied", f"this access key has no admin right on {target}", 403)
        if target == name or target.endswith(".fifo") != name.endswith(".fifo"):
            raise invalid("Dead-letter target must be another queue of the same type (standard or FIFO).")
        if await context.load(ctx, target) is None:
            raise invalid(f"Dead letter target does not exist: {target}")
    await ctx.service.set_control(name, max_deliveries=max_receive)
    if old_target and old_target != target:
        await _link(ctx, old_target, name, add=False)
    if target:
        await _link(ctx, target, name, add=True)


async def _link(ctx: Context, dlq: str, source: str, *, add: bool) -> None:
    doc = await context.load(ctx, dlq)
    if doc is None:
        return
    if add and source not in doc.sources:
        doc.sources.append(source)
    elif not add and source in doc.sources:
        doc.sources.remove(source)
    else:
        return
    await context.save(ctx, dlq, doc)


def _target(policy: str | None) -> str | None:
    try:
        return context.name_from_arn(orjson.loads(policy)["deadLetterTargetArn"]) if policy else None
    except (SqsError, orjson.JSONDecodeError, KeyError, TypeError):
        return None


async def read(ctx: Context, name: str, doc: QueueDoc, wanted: list[str]) -> dict[str, str]:
    """GetQueueAttributes: the named attributes (or All), computed ones included."""
    every = "All" in wanted
    out: dict[str, str] = {}
    if every or any(n in COUNTED for n in wanted):
        stats = await ctx.service.stats([name, *(f"{s}:dead" for s in doc.sources)])
        counts = {
            "ApproximateNumberOfMessages": stats[0].length + sum(s.length for s in stats[1:]),
            "ApproximateNumberOfMessagesNotVisible": stats[0].leased + sum(s.leased for s in stats[1:]),
            "ApproximateNumberOfMessagesDelayed": stats[0].delayed + sum(s.delayed for s in stats[1:]),
        }
        out.update({k: str(v) for k, v in counts.items() if every or k in wanted})
    fixed = {
        **context.DEFAULTS,
        **doc.attributes,
        "CreatedTimestamp": str(doc.created),
        "LastModifiedTimestamp": str(doc.modified or doc.created),
        "QueueArn": context.queue_arn(name),
    }
    if name.endswith(".fifo"):
        fixed["FifoQueue"] = "true"
        fixed.setdefault("ContentBasedDeduplication", "false")
    for key, value in fixed.items():
        if every or key in wanted:
            out[key] = value
    unknown = [n for n in wanted if n != "All" and n not in fixed and n not in COUNTED]
    if unknown:
        raise SqsError("InvalidAttributeName", f"Unknown Attribute {unknown[0][:100]}.")
    return out
