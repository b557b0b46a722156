"""Small server-rendered HTML pages: the queue list, the /j jobs page and the index page."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.8rem 1.2rem}header a{color:#fff;text-decoration:none}
main{padding:1rem 1.2rem;max-width:70rem}table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.4rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{font-weight:600;background:#eef0f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:13px ui-monospace,monospace;white-space:pre-wrap;word-break:break-all;margin:0}
.muted{color:#6b7280}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><header><a href="/"><strong>RestMQ</strong></a> · {escape(title)}</header>'
        f"<main>{body}</main></body></html>"
    )


def _link(queue: str) -> str:
    return f'<a href="/j/{quote(queue, safe=":@")}">{escape(queue)}</a>'


def queue_list(queues: list[str], following: str | None = None) -> str:
    """One page of the queue list; `following` is the link to the next page, when there is one."""
    items = "".join(f"<li>{_link(q)}</li>" for q in queues) or '<li class="muted">no queues yet</li>'
    more = f'<p><a rel="next" href="{escape(following)}">next page</a></p>' if following else ""
    return _page("queues", f"<ul>{items}</ul>{more}")
