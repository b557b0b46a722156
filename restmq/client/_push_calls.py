"""The push subscription calls (docs/push.md): POST, GET and DELETE /push/<queue>, GET /push/. Replies are the
server's JSON objects as dicts (the secret shows only as true or false)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from restmq.client._calls import Call, _json_dict, _q, check_queue

OPTIONS = ("secret", "timeout", "max_in_flight", "rate", "max_attempts", "backoff")


def save(queue: str, url: str, options: dict[str, Any]) -> Call[dict[str, Any]]:
    check_queue(queue)
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown push option {sorted(unknown)[0]!r}")
    body = {"url": url, **{name: value for name, value in options.items() if value is not None}}
    headers = {"Content-Type": "application/json"}
    return Call("POST", f"/push/{_q(queue)}", _json_dict, content=json.dumps(body).encode(), headers=headers)


def show(queue: str) -> Call[dict[str, Any]]:
    check_queue(queue)
    return Call("GET", f"/push/{_q(queue)}", _json_dict)


def listing() -> Call[list[dict[str, Any]]]:
    def parse(response: httpx.Response) -> list[dict[str, Any]]:
        return list(_json_dict(response)["subscriptions"])

    return Call("GET", "/push/", parse)


def remove(queue: str) -> Call[bool]:
    check_queue(queue)
    return Call("DELETE", f"/push/{_q(queue)}", lambda r: bool(_json_dict(r)["removed"]))
