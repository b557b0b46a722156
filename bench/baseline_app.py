"""The baseline: about the least code that serves the same two queue routes as RestMQ.

Bare Starlette + redis.asyncio (hiredis parser), served by uvicorn with uvloop and httptools, one worker:

- ``POST /q/{queue}``: LPUSH the form field ``value`` and answer its key as text; a JSON array body
  (``application/json``) is LPUSHed in one command and answered with ``{"count": n}``.
- ``GET /q/{queue}``: RPOP and answer ``{"value": ...}`` as JSON, or 204 when the list is empty.

    python bench/baseline_app.py --redis unix:///path/to/valkey.sock --port 8889
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import orjson
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def key_of(queue: str) -> str:
    """The list holding a queue (RestMQ's keys all start with ``rmq:``, so the two never meet)."""
    return f"baseline:{queue}"


def create_app(url: str) -> Starlette:
    db = Redis.from_url(url, decode_responses=True)

    async def post(request: Request) -> Response:
        queue = request.path_params["queue"]
        if request.headers.get("content-type", "").startswith("application/json"):
            values = orjson.loads(await request.body())
            await db.lpush(key_of(queue), *values)
            return Response(orjson.dumps({"count": len(values)}), media_type="application/json")
        form = await request.form()
        n = await db.lpush(key_of(queue), str(form["value"]))
        return PlainTextResponse(f"{queue}:{n}\r\n")

    async def get(request: Request) -> Response:
        value = await db.rpop(key_of(request.path_params["queue"]))
        if value is None:
            return Response(status_code=204)
        return Response(orjson.dumps({"value": value}), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await db.aclose()

    routes = [Route("/q/{queue}", post, methods=["POST"]), Route("/q/{queue}", get, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", required=True, help="engine URL, e.g. unix:///tmp/x/valkey.sock")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8889)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.redis),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
