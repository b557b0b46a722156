"""The URL shortener: a small Starlette app. Links live in Valkey; every redirect publishes a click event
(time, referrer, user agent, country from Accept-Language) to a RestMQ queue, and answers at once: the
analytics consumer (analytics.py) does the counting, later and elsewhere.

    GET  /             the page: shorten a link, see the clicks
    POST /api/links    url=<http(s) URL>  ->  {"code", "url", "short"}
    GET  /api/stats    clicks per link, per hour (last 24 h), top referrers, countries, browsers
    GET  /<code>       302 to the link, and one click event on the queue
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis  # noqa: TID251 - the demo keeps its own data in the same Valkey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from restmq import AsyncClient
from restmq.client import ClientError

CLICKS = "shortener.clicks"
PREFIX = "shortener:"
ALPHABET = string.digits + string.ascii_letters
HERE = Path(__file__).resolve().parent
log = logging.getLogger("shortener")


def encode(number: int) -> str:
    code = ""
    while True:
        number, digit = divmod(number, len(ALPHABET))
        code = ALPHABET[digit] + code
        if number == 0:
            return code


def country(accept_language: str) -> str:
    """The region of the first language the browser prefers ("pt-BR,pt;q=0.9" -> "BR"), or "unknown"."""
    first = accept_language.split(",")[0].split(";")[0].strip()
    region = first.replace("_", "-").split("-")[1:]
    return region[-1].upper() if region and len(region[-1]) == 2 and region[-1].isalpha() else "unknown"


def click_event(request: Request, code: str) -> dict[str, str]:
    return {
        "code": code,
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "referrer": request.headers.get("referer", ""),
        "user_agent": request.headers.get("user-agent", ""),
        "country": country(request.headers.get("accept-language", "")),
    }


def create_app(restmq_url: str, valkey_url: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.valkey = aioredis.Redis.from_url(valkey_url, decode_responses=True)
        async with AsyncClient(restmq_url, timeout=5) as client:
            app.state.restmq = client
            yield
        await app.state.valkey.aclose()

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/links", shorten, methods=["POST"]),
            Route("/api/stats", stats),
            Route("/{code:str}", follow),
        ],
        lifespan=lifespan,
    )


async def page(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


async def shorten(request: Request) -> Response:
    url = str((await request.form()).get("url", "")).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return JSONResponse({"error": "give an http:// or https:// URL"}, 400)
    valkey = request.app.state.valkey
    code = encode(await valkey.incr(PREFIX + "next") + 1000)  # skip the one-letter codes
    await valkey.hset(PREFIX + "links", code, url)
    return JSONResponse({"code": code, "url": url, "short": str(request.url_for("follow", code=code))})


async def follow(request: Request) -> Response:
    code = request.path_params["code"]
    url = await request.app.state.valkey.hget(PREFIX + "links", code)
    if url is None:
        return PlainTextResponse("no such link", 404)
    try:
        await request.app.state.restmq.add(CLICKS, click_event(request, code))
    except ClientError as exc:  # RestMQ away: the visitor still gets where they were going
        log.warning("click on %s not recorded: %s", code, exc)
    return RedirectResponse(url, 302)


async def stats(request: Request) -> Response:
    valkey = request.app.state.valkey
    links = await valkey.hgetall(PREFIX + "links")
    clicks = await valkey.hgetall(PREFIX + "clicks")
    now = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    hours = [(now - datetime.timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(23, -1, -1)]
    per_hour = await valkey.hmget(PREFIX + "hourly", hours)

    async def top(name: str) -> list[tuple[str, int]]:
        return [(member, int(score)) for member, score in await valkey.zrevrange(PREFIX + name, 0, 9, withscores=True)]

    base = str(request.base_url)
    answer: dict[str, Any] = {
        "total": sum(int(n) for n in clicks.values()),
        "links": sorted(
            ({"code": c, "url": u, "short": base + c, "clicks": int(clicks.get(c, 0))} for c, u in links.items()),
            key=lambda link: -link["clicks"],
        ),
        "hours": [{"hour": h, "clicks": int(n or 0)} for h, n in zip(hours, per_hour, strict=True)],
        "referrers": await top("referrers"),
        "countries": await top("countries"),
        "browsers": await top("browsers"),
    }
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
