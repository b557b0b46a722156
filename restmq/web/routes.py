"""The route table, and nothing else."""

from __future__ import annotations

from starlette.routing import Route, WebSocketRoute

from restmq.web import ops, rest, streams

routes = [
    Route("/", rest.index_get, methods=["GET"]),
    Route("/", rest.index_post, methods=["POST"]),
    Route("/queue", rest.json_protocol, methods=["POST"]),
    Route("/q", rest.list_queues, methods=["GET"]),
    Route("/q/", rest.list_queues, methods=["GET"]),
    Route("/q/{queue}", rest.get_message, methods=["GET"]),
    Route("/q/{queue}", rest.add_message, methods=["POST"]),
    Route("/q/{queue}", rest.purge_queue, methods=["DELETE"]),
    Route("/q/{queue}/{key}", rest.ack_message, methods=["DELETE"]),
    Route("/q/{queue}/redrive", rest.redrive, methods=["POST"]),
    Route("/q/{queue}/{key}/release", rest.release_message, methods=["POST"]),
    Route("/q/{queue}/{key}/extend", rest.extend_message, methods=["POST"]),
    Route("/p/{queue}", rest.policy, methods=["GET", "POST"]),
    Route("/control/{queue}", rest.control, methods=["GET", "POST"]),
    Route("/stats", rest.stats_all, methods=["GET"]),
    Route("/stats/", rest.stats_all, methods=["GET"]),
    Route("/stats/{queue}", rest.stats_queue, methods=["GET"]),
    Route("/j/{queue}", rest.jobs_page, methods=["GET"]),
    Route("/c/{queue}", streams.comet, methods=["GET"]),
    Route("/sse/{queue}", streams.server_sent_events, methods=["GET"]),
    WebSocketRoute("/ws/{queue}", streams.websocket),
    Route("/health", ops.health, methods=["GET"]),
    Route("/ready", ops.ready, methods=["GET"]),
]
