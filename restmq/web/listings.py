"""Paged listings for the HTTP handlers: `limit` and `after` from the query string, and only the queues the
caller's token covers. The paging contract itself is in restmq.core.listing and in docs/security.md
(#listings-and-dashboards-with-many-queues)."""

from __future__ import annotations

import fnmatch
import functools
from urllib.parse import urlencode

from starlette.requests import HTTPConnection

from restmq.core import listing
from restmq.core.model import QueuePage
from restmq.core.service import QueueService
from restmq.core.tokens import TokenRecord
from restmq.web.auth import CONSUMER, authorize
from restmq.web.http import integer


def page_params(conn: HTTPConnection) -> tuple[str | None, int]:
    """`after` (None when absent or empty) and the page size from `limit`, checked: a 400 for a bad one."""
    params = conn.query_params
    limit = integer(params, "limit") if params.get("limit") else None
    service: QueueService = conn.app.state.service
    return listing.check_after(params.get("after")), listing.page_size(limit, service.limits.max_page)


async def visible_page(conn: HTTPConnection) -> tuple[QueuePage, TokenRecord | None]:
    """The page the request asks for, of the queues its token covers (all without a token), and the token."""
    token = await authorize(conn, CONSUMER, None, "read")
    after, size = page_params(conn)
    service: QueueService = conn.app.state.service
    return await service.page(after, size, token.covers if token else None), token


def page_link(path: str, after: str, conn: HTTPConnection) -> str:
    """`path` with `after` and the request's own `limit`, for a page's "next" link."""
    query = {"after": after}
    if conn.query_params.get("limit"):
        query["limit"] = conn.query_params["limit"]
    return f"{path}?{urlencode(query)}"


def covers_of(patterns: tuple[str, ...] | None) -> listing.Covers | None:
    """What a token with these queue patterns covers (None: no token, everything), as TokenRecord.covers does;
    shared snapshots are keyed by the patterns rather than by the token."""
    return functools.partial(_covered, patterns) if patterns is not None else None


def _covered(patterns: tuple[str, ...], queue: str) -> bool:
    return any(fnmatch.fnmatchcase(queue, pattern) for pattern in patterns)
