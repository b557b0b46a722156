"""SQS queue operations: create, find, list, delete, purge, attributes, tags, dead-letter sources."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson

from restmq.core.names import MAX_QUEUE_NAME
from restmq.web.sqs import attributes, context
from restmq.web.sqs.context import Context, QueueDoc
from restmq.web.sqs.errors import SqsError, invalid, missing, no_queue

MAX_TAGS = 50
LIST_DEFAULT = 1000


async def create_queue(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "QueueName" not in params:
        raise missing("QueueName")
    name = context.check_name(params["QueueName"])
    wanted = attributes.settable(params, name, creating=True, max_value=ctx.service.limits.max_value)
    tags = _tags(params.get("tags") or params.get("Tags") or {})
    doc = await context.load(ctx, name)
    if doc is not None and doc.created:
        if any(doc.get(k) != v for k, v in wanted.items()):
            raise SqsError("QueueNameExists", "A queue already exists with the same name and a different value.")
        return {"QueueUrl": context.queue_url(ctx, name)}
    doc = doc or QueueDoc()
    redrive = wanted.get("RedrivePolicy")
    if redrive:
        await attributes.apply_redrive(ctx, name, doc, redrive)
    doc.attributes.update(wanted)
    doc.tags.update(tags)
    await context.save(ctx, name, doc)
    return {"QueueUrl": context.queue_url(ctx, name)}


async def get_queue_url(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "QueueName" not in params:
        raise missing("QueueName")
    name = params["QueueName"]
    if not isinstance(name, str) or not context.is_sqs_name(name) or await context.load(ctx, name) is None:
        raise no_queue()
    return {"QueueUrl": context.queue_url(ctx, name)}


async def list_queues(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    prefix = params.get("QueueNamePrefix") or ""
    limit = params.get("MaxResults")
    if not isinstance(prefix, str) or len(prefix) > 80:
        raise invalid("QueueNamePrefix must be a string of at most 80 characters.")
    if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= 1000):
        raise invalid("MaxResults must be from 1 to 1000.")
    after = _token(params.get("NextToken")) or _before(prefix)
    want = limit or LIST_DEFAULT
    found: list[str] = []
    more = True
    while more and len(found) < want:
        page = await ctx.service.page(after, want)
        for queue in page.queues:
            if prefix and queue > prefix and not queue.startswith(prefix):
                more = False  # names come in order: none further can match
                break
            after = queue
            if queue.startswith(prefix) and context.is_sqs_name(queue) and ctx.allows(queue, "read"):
                found.append(queue)
                if len(found) == want:
                    break
        more = more and page.next is not None
        if len(found) < want and page.next is not None:
            after = page.next
    reply: dict[str, Any] = {"QueueUrls": [context.queue_url(ctx, q) for q in found]}
    if limit is not None and len(found) == want and after is not None:
        reply["NextToken"] = base64.urlsafe_b64encode(after.encode()).decode()
    return reply


def _before(prefix: str) -> str | None:
    """The greatest queue name that sorts before every name starting with `prefix`, to start a listing there."""
    if not prefix:
        return None
    before = chr(ord(prefix[-1]) - 1)
    if not before.isascii() or not (before.isalnum() or before in "_-.:@"):
        return None
    return (prefix[:-1] + before).ljust(MAX_QUEUE_NAME, "z")


def _token(token: object) -> str | None:
    if token is None or token == "":
        return None
    try:
        return base64.urlsafe_b64decode(str(token)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("Invalid NextToken value.") from None


async def delete_queue(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    if doc.attributes.get("RedrivePolicy"):
        await attributes.apply_redrive(ctx, name, doc, None)
    await ctx.service.purge(name)
    await ctx.service.purge(f"{name}:dead")
    await ctx.service.set_control(name, max_deliveries=0)
    await ctx.service.set_attributes(name, None)
    return {}


async def purge_queue(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    await ctx.service.purge(name)
    await context.save(ctx, name, doc)  # purge unlists a queue: an SQS queue stays until DeleteQueue
    return {}


async def get_queue_attributes(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    wanted = params.get("AttributeNames") or []
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise invalid("AttributeNames must be a list of attribute names.")
    found = await attributes.read(ctx, name, doc, wanted)
    return {"Attributes": found} if found else {}


async def set_queue_attributes(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    if "Attributes" not in params:
        raise missing("Attributes")
    wanted = attributes.settable(params, name, creating=False, max_value=ctx.service.limits.max_value)
    if "RedrivePolicy" in wanted:
        await attributes.apply_redrive(ctx, name, doc, wanted["RedrivePolicy"])
        doc = await context.load(ctx, name) or doc  # apply_redrive may have saved it (as a DLQ of itself: never)
    for key, value in wanted.items():
        if value == "" and key in ("RedrivePolicy", "Policy", "RedriveAllowPolicy"):
            doc.attributes.pop(key, None)
        else:
            doc.attributes[key] = value
    await context.save(ctx, name, doc)
    return {}


def _tags(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise invalid("Tags must be a map of strings to strings.")
    if any(not 1 <= len(k) <= 128 or len(v) > 256 for k, v in raw.items()):
        raise invalid("Tag keys are 1-128 characters and values at most 256.")
    return raw


async def tag_queue(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    doc.tags.update(_tags(params.get("Tags") or {}))
    if len(doc.tags) > MAX_TAGS:
        raise invalid(f"Too many tags: a queue has at most {MAX_TAGS}.")
    await context.save(ctx, name, doc)
    return {}


async def untag_queue(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, doc = await context.require(ctx, params)
    keys = params.get("TagKeys") or []
    if not isinstance(keys, list):
        raise invalid("TagKeys must be a list.")
    for key in keys:
        doc.tags.pop(key, None)
    await context.save(ctx, name, doc)
    return {}


async def list_queue_tags(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _, doc = await context.require(ctx, params)
    return {"Tags": doc.tags} if doc.tags else {}


async def list_dead_letter_source_queues(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _, doc = await context.require(ctx, params)
    visible = [s for s in sorted(doc.sources) if ctx.allows(s, "read")]
    return {"queueUrls": [context.queue_url(ctx, s) for s in visible]}


async def start_message_move_task(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Redrive a DLQ: the dead letters of each source queue go back to it (RestMQ's redrive of `<source>:dead`).
    A DestinationArn must name one of the sources."""
    dlq = context.name_from_arn(params.get("SourceArn"))
    doc = await context.load(ctx, dlq)
    if doc is None:
        raise SqsError(
            "ResourceNotFoundException", "The resource that you specified for the SourceArn parameter doesn't exist."
        )
    sources = doc.sources
    if params.get("DestinationArn"):
        destination = context.name_from_arn(params["DestinationArn"])
        if destination not in sources:
            raise SqsError("UnsupportedOperation", "DestinationArn must be a source queue of this dead-letter queue.")
        sources = [destination]
    if not doc.sources:
        raise invalid("Source queue must be configured as a Dead Letter Queue.")
    denied = [s for s in sources if not ctx.allows(s, "write")]
    if denied:
        raise SqsError("AccessDenied", f"this access key has no write right on {denied[0]}", 403)
    moved = 0
    for source in sources:
        moved += await ctx.service.redrive(f"{source}:dead")
    handle = orjson.dumps({"dlq": dlq, "moved": moved, "at": int(time.time() * 1000)})
    return {"TaskHandle": handle.hex()}
