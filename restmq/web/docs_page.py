"""GET /docs: the API reference as one self-contained HTML page (no scripts, no CDN), rendered from the
documents of restmq/web/openapi.py."""

from __future__ import annotations

import html
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from restmq.web.openapi import asyncapi, openapi


async def docs_page(request: Request) -> Response:
    """This API as a human-readable HTML page."""
    state = request.app.state
    if not hasattr(state, "docs_html"):
        state.docs_html = render_docs(openapi(request.app.routes, state.settings), asyncapi(state.settings))
    return HTMLResponse(state.docs_html)


_METHODS = ("get", "post", "put", "patch", "delete")
_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:2px solid #d9dde6;padding-bottom:4px}
.op{background:#fff;border:1px solid #d9dde6;border-radius:6px;margin:14px 0;padding:12px 16px}
.op h3{margin:0;font-size:16px;font-family:ui-monospace,monospace}
.m{display:inline-block;min-width:64px;text-align:center;border-radius:4px;color:#fff;font-size:13px;padding:1px 6px;
margin-right:8px}
.get{background:#2f6fde}.post{background:#1f9d55}.delete{background:#d64545}.put,.patch{background:#b7791f}
.ch{background:#6b46c1}
.summary{color:#555;margin-left:8px;font-family:system-ui,sans-serif;font-weight:400}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th,td{text-align:left;border-bottom:1px solid #eceef2;padding:4px 8px;vertical-align:top}
code{font-family:ui-monospace,monospace;background:#eef0f4;padding:0 3px;border-radius:3px}
nav a{margin-right:12px}small{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _md(text: object) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _type_of(document: dict[str, Any], schema: Any) -> str:
    if isinstance(schema, dict) and "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    schema = _resolve(document, schema) or {}
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return " | ".join(_type_of(document, option) for option in schema[union])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array" and "items" in schema:
        kind = f"array of {_type_of(document, schema['items'])}"
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "exclusiveMinimum", "maximum") if k in schema]
    return f"{kind}" + (f" ({', '.join(bounds)})" if bounds else "")


def _parameters_table(document: dict[str, Any], parameters: list[Any]) -> str:
    if not parameters:
        return ""
    rows = []
    for raw in parameters:
        param = _resolve(document, raw)
        required = "required" if param.get("required") else ""
        rows.append(
            f"<tr><td><code>{_e(param['name'])}</code></td><td>{_e(param['in'])}</td>"
            f"<td>{_e(_type_of(document, param.get('schema')))}</td><td>{required}</td>"
            f"<td>{_md(param.get('description', ''))}</td></tr>"
        )
    return (
        "<table><tr><th>parameter</th><th>in</th><th>type</th><th></th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _responses_table(document: dict[str, Any], responses: dict[str, Any]) -> str:
    rows = []
    for status, raw in responses.items():
        answer = _resolve(document, raw)
        kinds = ", ".join(
            f"{media} {_type_of(document, spec.get('schema'))}" for media, spec in answer.get("content", {}).items()
        )
        rows.append(
            f"<tr><td><b>{_e(status)}</b></td><td>{_md(answer.get('description', ''))}</td><td>{_e(kinds)}</td></tr>"
        )
    return "<table><tr><th>status</th><th>meaning</th><th>body</th></tr>" + "".join(rows) + "</table>"


def _operation(document: dict[str, Any], path: str, method: str, op: dict[str, Any], shared: list[Any]) -> str:
    body = op.get("requestBody")
    body_html = ""
    if body:
        kinds = ", ".join(
            f"{media} {_type_of(document, spec.get('schema'))}" for media, spec in body.get("content", {}).items()
        )
        body_html = f"<p><small>body:</small> {_e(kinds)}</p>"
    return (
        f'<div class="op" id="{_e(op["operationId"])}"><h3><span class="m {method}">{method.upper()}</span>'
        f'{_e(path)}<span class="summary">{_e(op.get("summary", ""))}</span></h3>'
        f"<p>{_md(op.get('description', ''))}</p>"
        f"{_parameters_table(document, [*shared, *op.get('parameters', [])])}{body_html}"
        f"{_responses_table(document, op['responses'])}</div>"
    )


def _channels(spec: dict[str, Any]) -> str:
    parts = []
    for name, channel in spec["channels"].items():
        directions = []
        for direction, verb in (("subscribe", "server → client"), ("publish", "client → server")):
            if direction in channel:
                directions.append(f"<p><small>{verb}:</small> {_e(channel[direction].get('summary', ''))}</p>")
        parts.append(
            f'<div class="op"><h3><span class="m ch">{_e(channel["servers"][0].upper())}</span>{_e(name)}</h3>'
            f"<p>{_md(channel['description'])}</p>{''.join(directions)}</div>"
        )
    return "".join(parts)


def render_docs(document: dict[str, Any], channels: dict[str, Any]) -> str:
    """The page of an OpenAPI document and an AsyncAPI document."""
    tags = document["tags"]
    by_tag: dict[str, list[str]] = {tag["name"]: [] for tag in tags}
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault(op["tags"][0], []).append(_operation(document, path, method, op, shared))
    sections = []
    for tag in tags:
        sections.append(
            f'<h2 id="tag-{_e(tag["name"])}">{_e(tag["name"])}</h2><p>{_md(tag["description"])}</p>'
            + "".join(by_tag.get(tag["name"], []))
        )
    nav = " ".join(f'<a href="#tag-{_e(t["name"])}">{_e(t["name"])}</a>' for t in tags)
    info = document["info"]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>RestMQ API</title><style>{_CSS}</style></head><body><main>"
        f"<h1>RestMQ API <small>{_e(info['version'])}</small></h1><p>{_md(info['description'])}</p>"
        f'<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1), '
        f'<a href="/asyncapi.json">/asyncapi.json</a> (AsyncAPI 2.6).</p>'
        f'<nav>{nav} <a href="#channels">channels</a></nav>'
        + "".join(sections)
        + '<h2 id="channels">streaming channels</h2>'
        + _channels(channels)
        + "</main></body></html>"
    )
