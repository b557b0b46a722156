"""The route table, and nothing else: path, handler, who may call it, and (for the API description,
restmq/web/openapi.py) what each route takes and gives, as models of restmq/web/shapes.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.routing import Mount, Route, WebSocketRoute

from restmq.web import collectd, docs_page, head, observe, openapi, ops, rest, ring, schedules, streams, ui
from restmq.web import push as push_routes
from restmq.web import shapes as s
from restmq.web.api import ERRORS, HTML, JSON, JSONP, NDJSON, SSE, TEXT, Api, ApiRoute, Out
from restmq.web.auth import COMET, CONSUMER, PRODUCER, guard

REPLAYED = "`true` when an Idempotency-Key retry added nothing."
KEY = Out("The new key, `<queue>:<n>\\r\\n`.", media=[TEXT], headers={"Idempotent-Replayed": REPLAYED})
KEYS = Out("The key (text) of one message, or the keys (JSON) of a batch.", s.Keys, [TEXT], KEY.headers)
ACKED = (
    "With `ack=`: each ack as given, `=ok` or `=` the error code its DELETE would answer (MESSAGE_NOT_FOUND, "
    "LEASE_EXPIRED, LEASE_STALE), comma-separated in order, e.g. `jobs:7=ok, jobs:9@2=LEASE_STALE`."
)
NOTHING = Out("Nothing ready.", headers={"X-RestMQ-Status": "`stop` when the queue is stopped.", "X-RestMQ-Ack": ACKED})
ONE_OR_MORE = Out("A message, or an array with `count`.", s.Message | list[s.Message], headers={"X-RestMQ-Ack": ACKED})
PAGE = Out("An HTML page.", media=[HTML])
ADD_BODY: dict[str, Any] = {JSON: s.JsonBody, NDJSON: str, TEXT: str}
SETTLE = (*ERRORS, 404, 409)
COLLECTD_BODY: dict[str, Any] = {JSON: list[dict[str, Any]], TEXT: str}
TOO_LARGE = (*ERRORS, 413)
LIST = Api("List queues", "queues", {200: Out("The queue names.", s.QueueList, [HTML])}, s.PagingJsonp)
RING = Out("Nodes, capacity, weights, shares, placement version (after the change).", dict[str, Any])
STATS = Api("Statistics of queues, a page at a time", "queues", {200: s.Stats}, s.PagingJsonp)


def api(path: str, endpoint: Any, method: str, summary: str, tag: str, **described: Any) -> ApiRoute:
    return ApiRoute(path, endpoint, [method], Api(summary, tag, **described))


# fmt: off
routes = [
    # HEAD on the routes that hand out messages answers from the queue's statistics (restmq/web/head.py):
    # Starlette would run their GET endpoints, which take. Listed first, so that they win for HEAD.
    Route("/q/{queue}", guard(CONSUMER, "read", head.queue), methods=["HEAD"]),
    Route("/", head.index, methods=["HEAD"]),
    Route("/c/{queue}", guard(COMET, "read", head.stream), methods=["HEAD"]),
    Route("/sse/{queue}", guard(COMET, "read", head.stream), methods=["HEAD"]),
    Route("/stats/stream", head.stats_stream, methods=["HEAD"]),
    # The hot paths first: routes are matched in order.
    api("/q/{queue}", guard(CONSUMER, "read", rest.get_message), "GET", "Pop, long-poll or lease messages", "messages",
        query=s.PopMany, gives={200: ONE_OR_MORE, 204: NOTHING}),
    api("/q/{queue}", guard(PRODUCER, "write", rest.add_message), "POST", "Add a message, or a batch", "messages",
        query=s.AddOptions, headers=s.AddHeaders, form=s.AddForm, body=ADD_BODY, body_required=True, gives={200: KEYS},
        errors=TOO_LARGE),
    # The original routes. /, /queue, /q/ and /stats/ check access themselves (the queue is in the
    # body, or the listing is filtered by the caller's token).
    api("/", rest.index_get, "GET", "Dashboard, or pop (original route)", "original", query=s.PopIndex,
        gives={200: Out("The dashboard (no `queue`), or the message.", s.Message, [HTML])}, errors=(*ERRORS, 404)),
    api("/", rest.index_post, "POST", "Add (original route)", "original", form=s.IndexForm, body_required=True,
        gives={200: KEY}, errors=TOO_LARGE),
    api("/queue", rest.json_protocol, "POST", "JSON protocol", "original", query=s.Jsonp, form=s.CommandForm,
        body={JSON: s.Command}, body_required=True, gives={200: s.Reply}, errors=(*SETTLE, 413)),
    ApiRoute("/q", rest.list_queues, ["GET"], replace(LIST, op_id="listQueuesBare")),
    ApiRoute("/q/", rest.list_queues, ["GET"], LIST),
    api("/q/{queue}", guard(PRODUCER, "admin", rest.purge_queue), "DELETE", "Purge a queue", "queues", query=s.Jsonp,
        gives={200: s.Purged}),
    api("/q/{queue}/{key}", guard(CONSUMER, "read", rest.ack_message), "DELETE", "Acknowledge a leased message",
        "leases", query=s.Settle, gives={200: s.Settled}, errors=SETTLE),
    api("/q/{queue}/redrive", guard(PRODUCER, "admin", rest.redrive), "POST", "Redrive dead letters", "queues",
        query=s.Jsonp, gives={200: s.Redriven}),  # + write on the parent
    api("/q/{queue}/{key}/release", guard(CONSUMER, "read", rest.release_message), "POST", "Release a leased message",
        "leases", query=s.ReleaseQuery, form=s.ReleaseForm, gives={200: s.Settled}, errors=SETTLE),
    api("/q/{queue}/{key}/extend", guard(CONSUMER, "read", rest.extend_message), "POST", "Extend a lease", "leases",
        query=s.ExtendQuery, form=s.ExtendForm, gives={200: s.Settled}, errors=SETTLE),
    api("/p/{queue}", guard(CONSUMER, "read", rest.policy), "GET", "Streaming policy", "settings", op_id="getPolicy",
        query=s.Jsonp, gives={200: s.PolicyReply}),
    api("/p/{queue}", guard(PRODUCER, "admin", rest.policy), "POST", "Set the streaming policy", "settings",
        op_id="setPolicy", query=s.PolicyQuery, form=s.PolicyForm, gives={200: s.PolicyReply}),
    api("/control/{queue}", guard(CONSUMER, "read", rest.control), "GET", "Flow control", "settings",
        op_id="getControl", query=s.Jsonp, gives={200: s.ControlReply}),
    api("/control/{queue}", guard(PRODUCER, "admin", rest.control), "POST", "Set flow control", "settings",
        op_id="setControl", query=s.ControlQuery, form=s.ControlForm, gives={200: s.ControlReply}),
    ApiRoute("/stats", rest.stats_all, ["GET"], replace(STATS, op_id="statsBare")),
    ApiRoute("/stats/", rest.stats_all, ["GET"], replace(STATS, op_id="stats")),
    api("/stats/stream", ui.stats_stream, "GET", "Statistics as Server-Sent Events", "queues", query=s.PagingJsonp,
        gives={200: Out("An event stream, or the queue's statistics.", s.QueueStats, [SSE])}),  # else queue "stream"
    api("/stats/{queue}", guard(CONSUMER, "read", rest.stats_queue), "GET", "Statistics of a queue", "queues",
        op_id="queueStats", query=s.Jsonp, gives={200: s.QueueStats}),
    # The dashboard (restmq/web/ui.py). Its pages check access themselves: a browser without credentials
    # gets the page, which asks for a token.
    api("/j/{queue}", ui.queue_page, "GET", "Queue page", "pages", query=s.RecentQuery, gives={200: PAGE}),
    api("/ui", ui.dashboard, "GET", "Dashboard", "pages", query=s.Paging, gives={200: PAGE, 401: PAGE},
        errors=(400, 403), public=True),
    api("/peek/{queue}", guard(CONSUMER, "read", ui.peek), "GET", "Newest waiting messages, without delivering them",
        "queues", query=s.PeekQuery, gives={200: s.Peek}),
    Mount("/ui/static", app=ui.static_files, name="ui-static"),
    # Streams. The WebSocket handler checks access before accepting the connection.
    api("/c/{queue}", guard(COMET, "read", streams.comet), "GET", "COMET stream", "streams", query=s.CometQuery,
        gives={200: Out("A stream that stays open.", media=[NDJSON, JSONP, SSE])}),
    api("/sse/{queue}", guard(COMET, "read", streams.server_sent_events), "GET", "Server-Sent Events stream",
        "streams", query=s.SseQuery, headers=s.SseHeaders, gives={200: Out("An event stream.", media=[SSE])}),
    WebSocketRoute("/ws/{queue}", streams.websocket),
    # Ingest adapters (restmq/web/collectd.py, docs/ingest.md): into the server's collectd queues, as a producer.
    api("/collectd/data", collectd.data, "POST", "collectd value lists (write_http)", "ingest", op_id="collectdData",
        body=COLLECTD_BODY, body_required=True, gives={200: s.Keys}, errors=TOO_LARGE),
    api("/collectd/event", collectd.event, "POST", "collectd notifications", "ingest", op_id="collectdEvent",
        body=COLLECTD_BODY, body_required=True, gives={200: s.Keys}, errors=TOO_LARGE),
    # Operations: always open, they reveal nothing about queues.
    api("/health", ops.health, "GET", "Liveness", "operations", gives={200: s.Health}, public=True),
    api("/ready", ops.ready, "GET", "Readiness", "operations", gives={200: s.Ready, 503: s.Ready}, public=True),
    api("/metrics", guard(CONSUMER, "read", observe.metrics), "GET", "Prometheus metrics", "operations",
        gives={200: Out("Metrics.", media=[TEXT])}, errors=(401, 403)),
    # The ring's placement (restmq/web/ring.py, docs/scaling.md): admins only.
    api("/admin/ring", guard(PRODUCER, "admin", ring.show), "GET", "Ring placement", "operations", op_id="ring",
        gives={200: RING}, errors=(*ERRORS, 409)),
    *(api(f"/admin/ring/{action}", guard(PRODUCER, "admin", ring.override), "POST", f"Ring: {action} a node",
          "operations", op_id=f"ring{action.title()}", query=ring.OverrideQuery, gives={200: RING},
          errors=(*ERRORS, 404, 409)) for action in ("pin", "drain", "unpin")),
    api("/admin/ring/reset", guard(PRODUCER, "admin", ring.reset), "POST", "Ring: a new table for this node list",
        "operations", op_id="ringReset", gives={200: RING}, errors=(*ERRORS, 409)),
    # API descriptions (restmq/web/openapi.py; tests/integration/test_openapi.py keeps them true to this table).
    api("/openapi.json", openapi.openapi_json, "GET", "This description", "operations", op_id="openapi",
        gives={200: Out("OpenAPI document.", dict[str, Any])}, public=True),
    api("/asyncapi.json", openapi.asyncapi_json, "GET", "Streaming channels", "operations", op_id="asyncapi",
        gives={200: Out("AsyncAPI document.", dict[str, Any])}, public=True),
    api("/docs", docs_page.docs_page, "GET", "API reference page", "operations", op_id="docs", gives={200: PAGE},
        public=True),
    # Schedules (restmq/web/schedules.py, docs/schedules.md): they check access themselves (the queue is in the
    # body or the stored schedule).
    api("/schedules", schedules.create_schedule, "POST", "Create a schedule", "schedules", body={JSON: s.NewSchedule},
        body_required=True, gives={201: s.Schedule}, errors=(*ERRORS, 413)),
    api("/schedules", schedules.list_schedules, "GET", "List schedules", "schedules", gives={200: s.ScheduleList}),
    api("/schedules/{schedule_id}", schedules.get_schedule, "GET", "A schedule", "schedules",
        gives={200: s.Schedule}, errors=(*ERRORS, 404)),
    api("/schedules/{schedule_id}", schedules.delete_schedule, "DELETE", "Delete a schedule", "schedules",
        gives={200: s.ScheduleRemoved}, errors=(*ERRORS, 404)),
    api("/schedules/{schedule_id}/pause", schedules.pause_schedule, "POST", "Pause a schedule", "schedules",
        gives={200: s.Schedule}, errors=(*ERRORS, 404)),
    api("/schedules/{schedule_id}/resume", schedules.resume_schedule, "POST", "Resume a schedule", "schedules",
        gives={200: s.Schedule}, errors=(*ERRORS, 404)),
]
# fmt: on
# Push subscriptions (restmq/web/push.py, docs/push.md): the admin right on the queue.
# fmt: off
PUSH_ERRORS = (*ERRORS, 404, 413)
routes += [
    ApiRoute("/push", push_routes.listing, ["GET"], Api("List push subscriptions", "push", {200: s.PushList},
                                                        op_id="listPushBare")),
    api("/push/", push_routes.listing, "GET", "List push subscriptions", "push", op_id="listPush",
        gives={200: s.PushList}),
    api("/push/{queue}", guard(PRODUCER, "admin", push_routes.save), "POST", "Create, update or resume a push "
        "subscription", "push", op_id="savePush", body={JSON: s.PushRequest}, body_required=True,
        gives={200: s.PushSubscription}, errors=PUSH_ERRORS),
    api("/push/{queue}", guard(PRODUCER, "admin", push_routes.show), "GET", "A push subscription", "push",
        op_id="getPush", gives={200: s.PushSubscription}, errors=PUSH_ERRORS),
    api("/push/{queue}", guard(PRODUCER, "admin", push_routes.remove), "DELETE", "Remove a push subscription",
        "push", op_id="removePush", gives={200: s.PushRemoved}),
]
# fmt: on
