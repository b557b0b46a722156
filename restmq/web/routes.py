"""The route table, and nothing else: path, handler, and who may call it."""

from __future__ import annotations

from starlette.routing import Mount, Route, WebSocketRoute

from restmq.web import head, observe, openapi, ops, rest, streams, ui
from restmq.web.auth import COMET, CONSUMER, PRODUCER, guard

routes = [
    # HEAD on the routes that hand out messages answers from the queue's statistics (restmq/web/head.py):
    # Starlette would run their GET endpoints, which take. Listed first, so that they win for HEAD.
    Route("/q/{queue}", guard(CONSUMER, "read", head.queue), methods=["HEAD"]),
    Route("/", head.index, methods=["HEAD"]),
    Route("/c/{queue}", guard(COMET, "read", head.stream), methods=["HEAD"]),
    Route("/sse/{queue}", guard(COMET, "read", head.stream), methods=["HEAD"]),
    Route("/stats/stream", head.stats_stream, methods=["HEAD"]),
    # The hot paths first: routes are matched in order.
    Route("/q/{queue}", guard(CONSUMER, "read", rest.get_message), methods=["GET"]),
    Route("/q/{queue}", guard(PRODUCER, "write", rest.add_message), methods=["POST"]),
    # The original routes. /, /queue, /q/ and /stats/ check access themselves (the queue is in the
    # body, or the listing is filtered by the caller's token).
    Route("/", rest.index_get, methods=["GET"]),
    Route("/", rest.index_post, methods=["POST"]),
    Route("/queue", rest.json_protocol, methods=["POST"]),
    Route("/q", rest.list_queues, methods=["GET"]),
    Route("/q/", rest.list_queues, methods=["GET"]),
    Route("/q/{queue}", guard(PRODUCER, "admin", rest.purge_queue), methods=["DELETE"]),
    Route("/q/{queue}/{key}", guard(CONSUMER, "read", rest.ack_message), methods=["DELETE"]),
    Route("/q/{queue}/redrive", guard(PRODUCER, "admin", rest.redrive), methods=["POST"]),  # + write on the parent
    Route("/q/{queue}/{key}/release", guard(CONSUMER, "read", rest.release_message), methods=["POST"]),
    Route("/q/{queue}/{key}/extend", guard(CONSUMER, "read", rest.extend_message), methods=["POST"]),
    Route("/p/{queue}", guard(CONSUMER, "read", rest.policy), methods=["GET"]),
    Route("/p/{queue}", guard(PRODUCER, "admin", rest.policy), methods=["POST"]),
    Route("/control/{queue}", guard(CONSUMER, "read", rest.control), methods=["GET"]),
    Route("/control/{queue}", guard(PRODUCER, "admin", rest.control), methods=["POST"]),
    Route("/stats", rest.stats_all, methods=["GET"]),
    Route("/stats/", rest.stats_all, methods=["GET"]),
    Route("/stats/stream", ui.stats_stream, methods=["GET"]),  # SSE for EventSource; else the queue "stream"
    Route("/stats/{queue}", guard(CONSUMER, "read", rest.stats_queue), methods=["GET"]),
    # The dashboard (restmq/web/ui.py). Its pages check access themselves: a browser without credentials
    # gets the page, which asks for a token.
    Route("/j/{queue}", ui.queue_page, methods=["GET"]),
    Route("/ui", ui.dashboard, methods=["GET"]),
    Route("/peek/{queue}", guard(CONSUMER, "read", ui.peek), methods=["GET"]),
    Mount("/ui/static", app=ui.static_files, name="ui-static"),
    # Streams. The WebSocket handler checks access before accepting the connection.
    Route("/c/{queue}", guard(COMET, "read", streams.comet), methods=["GET"]),
    Route("/sse/{queue}", guard(COMET, "read", streams.server_sent_events), methods=["GET"]),
    WebSocketRoute("/ws/{queue}", streams.websocket),
    # Operations: always open, they reveal nothing about queues.
    Route("/health", ops.health, methods=["GET"]),
    Route("/ready", ops.ready, methods=["GET"]),
    Route("/metrics", guard(CONSUMER, "read", observe.metrics), methods=["GET"]),
    # API descriptions (restmq/web/openapi.py; tests/integration/test_openapi.py keeps them true to this table).
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/asyncapi.json", openapi.asyncapi_json, methods=["GET"]),
    Route("/docs", openapi.docs_page, methods=["GET"]),
]
