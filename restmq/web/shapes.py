"""The request and reply shapes of the HTTP API, as typed models.

The handlers build their replies as these TypedDicts (plain dicts at run time, serialized by orjson; mypy
checks them), and restmq/web/openapi.py turns the same models into JSON Schema with msgspec: a docstring is
the schema's description, an Annotated Meta its bounds and text. A bound the server takes from its settings
is named, not written (`_upto("max_wait")`): the description reads it from the running Limits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

from msgspec import Meta

from restmq.core.model import FlowStatus, Policy, SettleAction
from restmq.core.names import (
    CALLBACK_PATTERN,
    GROUP_ID_PATTERN,
    GROUP_ID_RULE,
    MAX_DELIVERIES,
    MAX_IDEMPOTENCY_KEY,
    MAX_PRIORITY,
    MAX_TTL,
    MESSAGE_KEY_PATTERN,
    QUEUE_NAME_PATTERN,
    QUEUE_NAME_RULE,
)

LIMIT = "x-restmq-limit"  # schema key naming the Limits field that is the maximum (replaced by openapi.py)
MAX_RECENT = 500  # messages one /peek or /j page may ask for (limit=)


def _upto(limit: str, **meta: Any) -> Meta:
    return Meta(extra_json_schema={LIMIT: limit}, **meta)


# -- fields ----------------------------------------------------------------------------------

QueueName = Annotated[
    str, Meta(pattern=f"^{QUEUE_NAME_PATTERN}$", description=QUEUE_NAME_RULE[0].upper() + QUEUE_NAME_RULE[1:])
]
MessageKey = Annotated[str, Meta(pattern=f"^{MESSAGE_KEY_PATTERN}$", description="Message key `<queue>:<n>`.")]
Callback = Annotated[
    str,
    Meta(
        pattern=f"^{CALLBACK_PATTERN}$",
        description="JSONP, only on a server started with --jsonp: wrap the JSON answer as `callback(<json>);` "
        "(application/javascript). Without --jsonp any callback= is a 400 JSONP_DISABLED.",
    ),
]
Seconds = Annotated[float, Meta(ge=0)]
Delay = Annotated[float, _upto("max_delay", ge=0, description="Seconds before the message is visible.")]
Ttl = Annotated[float, Meta(ge=0, le=MAX_TTL, description="Seconds the message may wait before it is dropped.")]
Priority = Annotated[int, Meta(ge=0, le=MAX_PRIORITY, description=f"0-{MAX_PRIORITY}, higher first.")]
GroupId = Annotated[
    str,
    Meta(
        pattern=f"^{GROUP_ID_PATTERN}$",
        description="Message group: delivered in the order added, one of the group in flight at a time; "
        "not with priority or delay. " + GROUP_ID_RULE[0].upper() + GROUP_ID_RULE[1:] + ".",
    ),
]
IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        description="Idempotency key (or the Idempotency-Key header): a retried add with the same key within "
        "the idempotency window (5 minutes unless set) returns the first key(s) and adds nothing.",
    ),
]
Wait = Annotated[
    float,
    _upto(
        "max_wait",
        ge=0,
        description="Long-poll: wait up to this many seconds for a message. A waiting long-poll holds a stream slot "
        "(503 TOO_MANY_STREAMS over --max-streams or --max-streams-per-client).",
    ),
]
Count = Annotated[int, _upto("max_count", ge=1, description="Return up to this many messages, as a JSON array.")]
Lease = Annotated[
    float,
    _upto(
        "max_lease", gt=0, description="Lease instead of removing: the message is hidden this many seconds until acked."
    ),
]
StreamLease = Annotated[
    float,
    _upto(
        "max_lease",
        ge=0,
        description="Lease mode (roundrobin queues): messages stay leased this many seconds until acked.",
    ),
]
AckKey = Annotated[
    str,
    Meta(
        pattern=f"^{MESSAGE_KEY_PATTERN}(@[0-9]{{1,15}})?$",
        description="A leased message key `<queue>:<n>`, or `<queue>:<n>@<count>` to ack it only if not delivered "
        "again since that delivery.",
    ),
]
Acks = Annotated[
    list[AckKey],
    Meta(
        description="With `lease`: acknowledge these messages of the queue first, in the same request (repeat `ack=`; "
        "at most --max-count, 1000 unless set). An ack that fails never keeps the lease from running, nor an empty "
        "or stopped queue the acks; `X-RestMQ-Ack` tells each ack's outcome."
    ),
]
DeliveryCount = Annotated[
    int, Meta(ge=0, description="The delivery's count: 409 LEASE_STALE if the message was delivered again since.")
]
MaxDeliveries = Annotated[int, Meta(ge=0, le=MAX_DELIVERIES, description="0 = unlimited.")]
Next = Annotated[
    str | None,
    Meta(
        description="The `after` of the next page; null on the last page. A page may hold fewer queues than "
        "`limit` (even none) while `next` is set: follow it until it is null."
    ),
]
Nodes = Annotated[
    dict[str, str],
    Meta(
        description='Backend node states: {"redis://:***@host:6379/0": "up"} for admins (passwords redacted), '
        '{"node1": "up"} for other callers.'
    ),
]
JsonBody = Annotated[Any, Meta(description="An array (a batch) or one JSON document.")]
Recent = Annotated[int, Meta(ge=1, le=MAX_RECENT, description="How many of the newest messages (20 by default).")]

# -- replies ---------------------------------------------------------------------------------


class Error(TypedDict):
    """Every error answer. `code` is stable and machine-readable (see docs/semantics.md)."""

    error: Annotated[str, Meta(description="Human-readable text.")]
    code: Annotated[
        str, Meta(examples=["QUEUE_NAME_INVALID", "MESSAGE_NOT_FOUND", "LEASE_EXPIRED", "BACKEND_UNAVAILABLE"])
    ]


class Message(TypedDict):
    """A message."""

    key: MessageKey
    value: Annotated[str, Meta(description="The message text (a JSON document is its text).")]
    count: Annotated[int, Meta(ge=0, description="This delivery's number.")]


class Keys(TypedDict):
    """The keys of a batch, in order."""

    keys: list[str]


class QueueList(TypedDict):
    """One page of queue names."""

    queues: Annotated[list[str], Meta(description="This page's names, in order.")]
    count: Annotated[int, Meta(description="How many names this page holds.")]
    next: Next


class Purged(TypedDict):
    """How many messages were removed."""

    queue: str
    status: Annotated[int, Meta(description="How many messages were removed.")]


class Settled(TypedDict):
    """The settled message."""

    queue: str
    key: str
    count: Annotated[int, Meta(description="The message's delivery count.")]
    status: SettleAction


class Redriven(TypedDict):
    """How many dead letters moved back."""

    queue: str
    target: str
    moved: int


class PolicyReply(TypedDict):
    """The streaming policy."""

    queue: str
    value: Policy


class ControlReply(TypedDict):
    """The flow control."""

    queue: str
    status: FlowStatus
    max_deliveries: MaxDeliveries


class QueueStats(TypedDict):
    """Statistics of a queue: sizes, consumers, settings and counters."""

    queue: str
    length: Annotated[int, Meta(description="Messages ready to deliver now.")]
    delayed: int
    leased: int
    dead: Annotated[int, Meta(description="Messages waiting in `<queue>:dead`.")]
    consumers: Annotated[int, Meta(description="Streaming consumers on every server process.")]
    status: FlowStatus
    policy: Policy
    max_deliveries: NotRequired[int]
    added: NotRequired[int]
    delivered: NotRequired[int]
    acked: NotRequired[int]
    redelivered: NotRequired[int]
    expired: NotRequired[int]
    dead_lettered: NotRequired[int]


class Stats(TypedDict):
    """Statistics of one page of queues, and the backend nodes' states."""

    queues: Annotated[list[QueueStats], Meta(description="This page's queues.")]
    count: Annotated[int, Meta(description="How many queues this page holds.")]
    next: Next
    nodes: Nodes


class Peek(TypedDict):
    """The newest waiting messages and the queue's statistics."""

    queue: str
    messages: list[Message]
    truncated: Annotated[bool, Meta(description="Older messages were left out to stay within --max-peek-bytes.")]
    stats: QueueStats


class Health(TypedDict):
    """The process is up."""

    status: str


class Ready(TypedDict):
    """Whether the backend answers."""

    status: Literal["ready", "unavailable"]
    error: NotRequired[str]
    nodes: NotRequired[Annotated[dict[str, str], Meta(description="As in /stats/: addresses for admins only.")]]


class Command(TypedDict, total=False):
    """A JSON-protocol command (POST /queue, or a WebSocket frame). A field of another type than shown is a 400
    PARAMETER_INVALID (on a WebSocket, an error frame); null means the field is absent."""

    cmd: Required[Literal["add", "get", "take", "del", "ack", "release", "extend"]]
    queue: Required[QueueName]
    value: Annotated[Any, Meta(description="add: the message (a non-string is stored as its JSON text).")]
    key: Annotated[str, Meta(description="del, ack, release, extend: the message key.")]
    count: Annotated[int, Meta(description="ack, release, extend: the delivery's count.")]
    id: Annotated[str, Meta(description="add: idempotency key.")]
    group: GroupId
    priority: Priority
    delay: Seconds
    ttl: Seconds
    lease: Seconds


class Reply(TypedDict, total=False):
    """add: {queue,value,key}; get (soft get: the message stays, its count rises) and take: {queue,value,key,count};
    del: {queue,key,deleted}; ack/release/extend: {queue,key,count,status}. An empty queue answers
    {"error":"empty queue","code":"QUEUE_EMPTY"}, a stopped one {"error":"queue stopped","code":"QUEUE_STOPPED"},
    with status 200."""

    queue: str
    key: str
    value: Any
    count: int
    deleted: bool
    status: str
    error: str
    code: str


class StreamMessage(TypedDict):
    """A queue message on a stream."""

    key: Annotated[str, Meta(description="`<queue>:<n>`")]
    value: str
    count: NotRequired[Annotated[int, Meta(description="Lease mode only: this delivery's number (ack with it).")]]


class Gap(TypedDict):
    """SSE `event: gap`: the replay does not reach back to Last-Event-ID (the history is shorter, or older
    history did not fit in --max-replay-bytes): messages may have been missed."""

    last_event_id: str
    oldest: Annotated[str | None, Meta(description="The oldest key replayed.")]


# -- requests: query strings, headers and form bodies ------------------------------------------


class PathParams(TypedDict):
    queue: QueueName
    key: MessageKey


class Jsonp(TypedDict, total=False):
    callback: Callback


class Paging(TypedDict, total=False):
    limit: Annotated[
        int,
        Meta(
            ge=1,
            description="Queues per page; the default, and the most used when more is asked, is the server's "
            "--max-page (1000 unless set).",
        ),
    ]
    after: Annotated[
        str,
        Meta(
            pattern=f"^{QUEUE_NAME_PATTERN}$",
            description="Start after this name (the `next` of the previous page); queues are listed in name order.",
        ),
    ]


class PagingJsonp(Paging, Jsonp, total=False):
    pass


class Pop(Jsonp, total=False):
    wait: Wait
    lease: Lease


class PopMany(Pop, total=False):
    count: Count
    ack: Acks


class PopIndex(Pop, total=False):
    queue: QueueName


class AddOptions(Jsonp, total=False):
    delay: Delay
    ttl: Ttl
    priority: Priority
    id: IdempotencyKey
    group: GroupId


AddHeaders = TypedDict("AddHeaders", {"Idempotency-Key": IdempotencyKey}, total=False)


class Settle(Jsonp, total=False):
    count: DeliveryCount


class ReleaseQuery(Settle, total=False):
    delay: Delay


class ExtendQuery(Settle, total=False):
    lease: Lease


class PolicyQuery(Jsonp, total=False):
    policy: Policy


class ControlQuery(Jsonp, total=False):
    status: FlowStatus
    max_deliveries: MaxDeliveries


class RecentQuery(TypedDict, total=False):
    limit: Recent


class PeekQuery(RecentQuery, Jsonp, total=False):
    pass


class CometQuery(Jsonp, total=False):
    lease: StreamLease


class SseQuery(TypedDict, total=False):
    lease: StreamLease
    last_event_id: Annotated[str, Meta(description="As the Last-Event-ID header.")]


SseHeaders = TypedDict("SseHeaders", {"Last-Event-ID": str}, total=False)


class StreamQuery(TypedDict, total=False):
    """The query of a streaming channel."""

    lease: StreamLease
    token: Annotated[str, Meta(description="Bearer token, where headers cannot be set.")]


class AddForm(TypedDict, total=False):
    value: Annotated[str, Meta(description="The message (or `msg`).")]
    msg: str
    delay: Annotated[Seconds, Meta(description="Seconds the message stays invisible.")]
    ttl: Annotated[Seconds, Meta(description="Seconds it may wait before it is dropped.")]
    priority: Priority
    id: IdempotencyKey
    group: GroupId


class IndexForm(AddForm, total=False):
    queue: Required[QueueName]


class CommandForm(TypedDict, total=False):
    body: Annotated[str, Meta(description="The JSON command.")]
    msg: str


class ReleaseForm(TypedDict, total=False):
    delay: Seconds
    count: DeliveryCount


class ExtendForm(TypedDict, total=False):
    lease: Seconds
    count: DeliveryCount


class PolicyForm(TypedDict, total=False):
    policy: Policy


class ControlForm(TypedDict, total=False):
    status: FlowStatus
    max_deliveries: MaxDeliveries
