"""SQS message operations: send (and batch), receive, delete (and batch), visibility (and batch), moves."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

import orjson

from restmq.core.model import Message, PopMode, SettleAction
from restmq.core.service import AddOptions
from restmq.errors import RestMQError
from restmq.web.sqs import context, handles, md5
from restmq.web.sqs import message_shapes as shapes
from restmq.web.sqs.batches import check_entries, failure, run_batch
from restmq.web.sqs.context import ACCOUNT, Context, QueueDoc
from restmq.web.sqs.errors import SqsError, invalid, missing

MAX_RECEIVE = 10
DEDUP_WINDOW_MS = 300_000  # SQS's five-minute deduplication interval (QueueService's idempotency window)
DLQ_SLICE = 1.0  # seconds a long-poll on a DLQ waits on its own queue before looking at its sources' dead letters


def fifo_add_options(params: dict[str, Any], doc: QueueDoc, body: str) -> tuple[str | None, str | None]:
    """A FIFO send's (idempotency key, message group): MessageDeduplicationId, or with ContentBasedDeduplication
    the SHA-256 of the body, is the idempotency key (a five-minute window)."""
    group = params.get("MessageGroupId")
    if not isinstance(group, str) or not 1 <= len(group) <= 128:
        raise missing("MessageGroupId")
    dedup = params.get("MessageDeduplicationId")
    if dedup is None and doc.get("ContentBasedDeduplication").lower() == "true":
        dedup = hashlib.sha256(body.encode()).hexdigest()
    if not isinstance(dedup, str) or not 1 <= len(dedup) <= 128:
        raise invalid(
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly"
        )
    return f"sqs-dedup:{dedup}", group


def _prepare(
    params: dict[str, Any], name: str, doc: QueueDoc
) -> tuple[str, dict[str, Any], AddOptions, dict[str, Any]]:
    """A send's body, stored JSON, add options and reply (without MessageId)."""
    body = shapes.check_body(params.get("MessageBody"))
    attributes, size = shapes.check_attributes(params.get("MessageAttributes"))
    system, _ = shapes.check_attributes(params.get("MessageSystemAttributes"), system=True)
    limit = doc.number("MaximumMessageSize")
    if len(body.encode()) + size > limit:
        raise invalid(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.")
    fifo = name.endswith(".fifo")
    if fifo and "DelaySeconds" in params:
        raise invalid("Value for parameter DelaySeconds is invalid. Reason: FIFO queues take the queue's delay only.")
    delay = context.whole_number(params, "DelaySeconds", doc.number("DelaySeconds"), 0, 900)
    if fifo and delay:  # a message group's head is ready or leased, never delayed (docs/semantics.md)
        raise invalid("Value for parameter DelaySeconds is invalid. Reason: RestMQ's FIFO queues take no delay.")
    retention = doc.attributes.get("MessageRetentionPeriod")
    idem, group = fifo_add_options(params, doc, body) if fifo else (None, None)
    record: dict[str, Any] = {"i": str(uuid.uuid4()), "t": int(time.time() * 1000)}
    if attributes:
        record["m"] = attributes
    if system:
        record["s"] = system
    if group is not None:
        record["g"] = group
        record["d"] = (idem or "")[len("sqs-dedup:") :]
    options = AddOptions(delay=float(delay), ttl=float(retention or 0), idempotency_key=idem, group=group)
    reply: dict[str, Any] = {"MD5OfMessageBody": md5.of_body(body)}
    if attributes:
        reply["MD5OfMessageAttributes"] = md5.of_attributes(attributes)
    if system:
        reply["MD5OfMessageSystemAttributes"] = md5.of_attributes(system)
    return body, record, options, reply


async def _send_one(ctx: Context, name: str, doc: QueueDoc, params: dict[str, Any]) -> dict[str, Any]:
    body, record, options, reply = _prepare(params, name, doc)
    result = await ctx.service.add(name, [body], options, attributes=[orjson.dumps(record).decode()])
    message_id = record["i"]
    if result.duplicate:  # a FIFO deduplicated send: the first send's id, while that message is still there
        first = shapes.stored((await ctx.service.message_attributes(name, [result.first]))[0])
        message_id = first.get("i", message_id)
    reply["MessageId"] = message_id
    if name.endswith(".fifo"):
        reply["SequenceNumber"] = str(result.first).zfill(20)
    return reply


async def send_message(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    return await _send_one(ctx, name, doc, params)


async def send_message_batch(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    entries = params.get("Entries")
    total = sum(len(str(e.get("MessageBody", "")).encode()) for e in entries or [] if isinstance(e, dict))
    if total > doc.number("MaximumMessageSize"):
        raise SqsError(
            "BatchRequestTooLong", f"Batch requests cannot be longer than {doc.get('MaximumMessageSize')} bytes."
        )

    if name.endswith(".fifo"):  # each entry its own deduplication key: one add each

        async def one(entry: dict[str, Any]) -> dict[str, Any]:
            return await _send_one(ctx, name, doc, entry)

        return await run_batch(entries, one)
    return await _send_grouped(ctx, name, doc, check_entries(entries))


async def _send_grouped(ctx: Context, name: str, doc: QueueDoc, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A standard queue's batch: the valid entries in one add per set of options (usually one), in order."""
    groups: dict[AddOptions, list[tuple[str, str, dict[str, Any], dict[str, Any]]]] = {}
    failed: list[dict[str, Any]] = []
    for entry in entries:
        try:
            body, record, options, reply = _prepare(entry, name, doc)
        except (SqsError, RestMQError) as exc:
            failed.append(failure(entry["Id"], exc))
            continue
        groups.setdefault(options, []).append((entry["Id"], body, record, reply))
    done: dict[str, dict[str, Any]] = {}
    for options, group in groups.items():
        records = [orjson.dumps(record).decode() for _, _, record, _ in group]
        await ctx.service.add(name, [body for _, body, _, _ in group], options, attributes=records)
        for entry_id, _, record, reply in group:
            done[entry_id] = {"Id": entry_id, **reply, "MessageId": record["i"]}
    successful = [done[e["Id"]] for e in entries if e["Id"] in done]
    return {"Successful": successful, "Failed": failed}


# -- receiving ------------------------------------------------------------------------------------


def _sources(name: str, doc: QueueDoc) -> list[str]:
    """The RestMQ queues a receive on this SQS queue reads: itself, then its sources' dead letters."""
    return [name, *(f"{source}:dead" for source in doc.sources)]


async def _lease(ctx: Context, queues: list[str], count: int, lease: float, wait: float) -> list[Message]:
    service = ctx.service
    if len(queues) == 1:
        return (await service.get(queues[0], mode=PopMode.LEASE, count=count, lease=lease, wait=wait)).messages
    loop = asyncio.get_running_loop()
    ends = loop.time() + wait
    while True:
        found: list[Message] = []
        for queue in queues:
            got = await service.get(queue, mode=PopMode.LEASE, count=count - len(found), lease=lease)
            found.extend(got.messages)
            if len(found) >= count:
                break
        remaining = ends - loop.time()
        if found or remaining <= 0:
            return found
        slice_ = min(remaining, DLQ_SLICE)
        found = (await service.get(queues[0], mode=PopMode.LEASE, count=count, lease=lease, wait=slice_)).messages
        if found:
            return found


async def receive_message(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    count = context.whole_number(params, "MaxNumberOfMessages", 1, 1, MAX_RECEIVE)
    wait = context.whole_number(params, "WaitTimeSeconds", doc.number("ReceiveMessageWaitTimeSeconds"), 0, 20)
    visibility = context.whole_number(params, "VisibilityTimeout", doc.number("VisibilityTimeout"), 0, 43_200)
    lease = max(visibility, 0.001)  # 0: visible again at once (a lease must last)
    messages = await _lease(ctx, _sources(name, doc), count, lease, float(wait))
    wanted = {*_names(params, "AttributeNames"), *_names(params, "MessageSystemAttributeNames")}
    attribute_names = _names(params, "MessageAttributeNames")
    now = int(time.time() * 1000)
    stored: dict[tuple[str, int], str | None] = {}
    for queue in dict.fromkeys(m.queue for m in messages):  # one read per queue (a DLQ reads several)
        ns = [m.n for m in messages if m.queue == queue]
        stored.update(zip(((queue, n) for n in ns), await ctx.service.message_attributes(queue, ns), strict=True))
    out = [_received(m, shapes.stored(stored[m.queue, m.n]), wanted, attribute_names, now) for m in messages]
    return {"Messages": out} if out else {}


def _names(params: dict[str, Any], name: str) -> list[str]:
    names = params.get(name) or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise invalid(f"{name} must be a list of names.")
    return names


def _received(message: Message, record: dict[str, Any], wanted: set[str], names: list[str], now: int) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "MessageId": record.get("i") or message.key,
        "ReceiptHandle": handles.encode(message.queue, message.n, message.count),
        "MD5OfBody": md5.of_body(message.value),
        "Body": message.value,
    }
    system = {
        "SenderId": ACCOUNT,
        "SentTimestamp": str(record.get("t") or now),
        "ApproximateReceiveCount": str(message.count),
    }
    if message.count == 1:
        system["ApproximateFirstReceiveTimestamp"] = str(now)
    if "g" in record:
        system.update(MessageGroupId=record["g"], MessageDeduplicationId=record.get("d", ""))
        system["SequenceNumber"] = str(message.n).zfill(20)
    for key, value in (record.get("s") or {}).items():
        system[key] = value.get("StringValue", "")
    every = "All" in wanted
    chosen = {k: v for k, v in system.items() if every or k in wanted}
    if chosen:
        reply["Attributes"] = chosen
    attributes = shapes.selected(record.get("m") or {}, names)
    if attributes:
        reply["MessageAttributes"] = attributes
        reply["MD5OfMessageAttributes"] = md5.of_attributes(attributes)
    return reply


# -- deleting and visibility ------------------------------------------------------------------------


def _receipt(name: str, doc: QueueDoc, handle: object) -> handles.Receipt:
    if handle is None or handle == "":
        raise missing("ReceiptHandle")
    receipt = handles.decode(handle)
    if receipt.queue not in _sources(name, doc):
        raise SqsError(
            "ReceiptHandleIsInvalid", "The input receipt handle is not a valid receipt handle for this queue."
        )
    return receipt


async def _delete(ctx: Context, receipt: handles.Receipt) -> None:
    """SQS deletes succeed for a message already gone, and (as AWS documents for an older handle) delete nothing
    when the handle is not the latest receive's: a STALE handle, or a visibility timeout that ran out."""
    try:
        await ctx.service.settle(receipt.queue, receipt.key, SettleAction.ACK, expected_count=receipt.deliveries)
    except RestMQError as exc:
        if exc.code not in ("MESSAGE_NOT_FOUND", "LEASE_STALE", "LEASE_EXPIRED"):
            raise


async def delete_message(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    await _delete(ctx, _receipt(name, doc, params.get("ReceiptHandle")))
    return {}


async def delete_message_batch(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The handles that are valid for the queue are acked together, one round trip per source queue; what they
    find (gone, stale, expired) is a success, as for DeleteMessage."""
    name, doc = await context.require(ctx, params)
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    by_queue: dict[str, list[tuple[str, int]]] = {}
    for entry in check_entries(params.get("Entries")):
        try:
            receipt = _receipt(name, doc, entry.get("ReceiptHandle"))
        except SqsError as exc:
            failed.append(failure(entry["Id"], exc))
            continue
        by_queue.setdefault(receipt.queue, []).append((receipt.key, receipt.deliveries))
        successful.append({"Id": entry["Id"]})
    for queue, items in by_queue.items():
        await ctx.service.ack_many(queue, items)
    return {"Successful": successful, "Failed": failed}


async def _change(ctx: Context, receipt: handles.Receipt, params: dict[str, Any]) -> None:
    if "VisibilityTimeout" not in params:
        raise missing("VisibilityTimeout")
    seconds = context.whole_number(params, "VisibilityTimeout", 0, 0, 43_200)
    action = SettleAction.EXTEND if seconds > 0 else SettleAction.RELEASE
    try:
        await ctx.service.settle(
            receipt.queue, receipt.key, action, expected_count=receipt.deliveries, seconds=float(seconds)
        )
    except RestMQError as exc:
        if exc.code == "LEASE_EXPIRED":
            raise SqsError("MessageNotInflight", "The message referred to isn't in flight.") from None
        if exc.code in ("MESSAGE_NOT_FOUND", "LEASE_STALE"):
            raise SqsError("ReceiptHandleIsInvalid", f"The receipt handle has expired: {exc.message}") from None
        raise


async def change_message_visibility(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    await _change(ctx, _receipt(name, doc, params.get("ReceiptHandle")), params)
    return {}


async def change_message_visibility_batch(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)

    async def one(entry: dict[str, Any]) -> dict[str, Any]:
        await _change(ctx, _receipt(name, doc, entry.get("ReceiptHandle")), entry)
        return {}

    return await run_batch(params.get("Entries"), one)
