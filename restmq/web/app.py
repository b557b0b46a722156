"""create_app(settings): the Starlette application. The lifespan opens the Store, builds the
QueueService and runs this process's reaper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from restmq.config import Settings
from restmq.core.dispatch import Streams
from restmq.core.schedule_runner import ScheduleRunner
from restmq.core.schedule_service import ScheduleService
from restmq.core.service import QueueService
from restmq.core.store import Store
from restmq.errors import BackendUnavailable, RestMQError
from restmq.push.allow import AllowList
from restmq.storage.factory import open_store
from restmq.web import compat2010
from restmq.web.acl_file import load_acl
from restmq.web.auth import Access
from restmq.web.browser import BrowserGuard, OriginPolicy
from restmq.web.errors import InputGuard, restmq_error
from restmq.web.hosts import HostAllowlist
from restmq.web.hot import HotRoutes
from restmq.web.ingest import start_syslog
from restmq.web.limits import StreamSlots
from restmq.web.observe import RequestContext
from restmq.web.peers import PeerAddress
from restmq.web.push import start_push
from restmq.web.ring import ring_admin
from restmq.web.routes import routes
from restmq.web.shutdown import ShutdownHooks
from restmq.web.sqs.endpoint import SqsEndpoint
from restmq.web.token_watch import TokenWatch

log = logging.getLogger("restmq.web")


async def run_reaper(store: Store, interval: float) -> None:
    """Return expired leases, promote due delayed messages and drop expired ones, forever."""
    unavailable = False
    while True:
        try:
            await store.reap()
            if unavailable:
                log.info("reaper: backend is back")
            unavailable = False
        except BackendUnavailable as exc:
            if not unavailable:
                log.warning("reaper: %s", exc.message)
            unavailable = True
        except Exception:
            log.exception("reaper failed")
        await asyncio.sleep(interval)


class RestMQApp(Starlette):
    """Starlette without its outermost ServerErrorMiddleware: RequestContext, the first of our layers, already
    turns any exception into the JSON 500 (logged once, with the request id), so that layer only added a call
    and a wrapped send to every request."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if isinstance(stack, ServerErrorMiddleware) and stack.handler is None and not stack.debug:
            return stack.app
        return stack


def _middleware(settings: Settings, origins: OriginPolicy, table: list[BaseRoute]) -> list[Middleware]:
    hosts = HostAllowlist(settings.allowed_hosts, settings.host)
    # The client's address and scheme are settled first, for everything after (origin checks, ACL, stream limits).
    stack = [
        Middleware(RequestContext, backend_timeout=settings.backend_timeout),
        Middleware(PeerAddress, proxies=settings.forwarded_allow_ips),
        Middleware(BrowserGuard, hosts=hosts, origins=origins),
    ]
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID"],
                expose_headers=["X-Request-ID", "X-RestMQ-Status", "Idempotent-Replayed", "Retry-After"],
                allow_credentials=not wildcard,  # browsers refuse credentials with a wildcard origin
                max_age=600,
            )
        )
    stack.append(Middleware(InputGuard))
    sqs = Middleware(SqsEndpoint, sqs_port=settings.sqs_port)  # SQS on / and queue URLs (every path of --sqs-port)
    if settings.sqs_port is not None:
        stack.append(sqs)  # --sqs-port's /q/... paths are SQS too: before the hot routes
    stack.append(Middleware(HotRoutes, routes=table))  # innermost: after the guards, before the router
    if settings.sqs_port is None:
        stack.append(sqs)  # only / and queue URLs reach it: the hot routes never do
    return stack


def _open_store(settings: Settings) -> Store:
    return open_store(
        settings.redis,
        settings.redis_cluster,
        coalesce=settings.coalesce,
        placement=settings.ring_placement,
        placement_interval=settings.ring_placement_interval,
        plain_batches=settings.plain_batches,
    )


def create_app(settings: Settings, store_factory: Callable[[], Store] | None = None) -> Starlette:
    settings = compat2010.settings(settings)
    table = compat2010.routes(routes) if settings.compat == "2010" else routes  # chosen once, here
    acl = load_acl(settings.acl) if settings.acl else None  # a bad ACL file stops start-up
    shutdown = ShutdownHooks()
    push_allow = AllowList(settings.push_allow)  # a bad rule stops start-up

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = store_factory() if store_factory is not None else _open_store(settings)
        service = QueueService(store, settings.limits)
        app.state.service = service
        app.state.ring = ring_admin(store)  # None unless the store is a ring: its admin routes (web/ring.py)
        app.state.streams = streams = Streams(store, service.waiters)
        streams.start()
        remove_hook = shutdown.add(streams.close_consumers)
        shutdown.chain_exit_signals()
        app.state.settings = settings
        app.state.access = access = Access(store, acl, mode=settings.auth)
        app.state.token_watch = token_watch = TokenWatch(access)
        token_watch.start()
        app.state.stream_slots = StreamSlots(settings.limits.max_streams, settings.limits.max_streams_per_client)
        reaper = asyncio.create_task(run_reaper(store, settings.reaper_interval), name="restmq-reaper")
        app.state.syslog = syslog = await start_syslog(settings, service, shutdown)  # None without --syslog-port
        push = start_push(app.state, push_allow)  # None without --push-allow
        app.state.schedules = ScheduleService(store, settings.limits)
        app.state.schedule_runner = schedule_runner = ScheduleRunner(store, service.waiters)
        schedule_runner.start()
        try:
            yield
        finally:
            if push is not None:
                await push.close()
            if syslog is not None:  # first: what it read is queued while the store is still open
                await syslog.close()
            remove_hook()
            await streams.close()
            await token_watch.close()
            await schedule_runner.close()
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            service.waiters.close()
            await store.close()

    origins = OriginPolicy(settings.cors_origins)
    app = RestMQApp(
        routes=table,
        middleware=_middleware(settings, origins, table),
        exception_handlers={RestMQError: restmq_error},  # anything else: RequestContext
        lifespan=lifespan,
    )
    app.state.origins = origins  # auth.py asks it whether the WebSocket auth cookie counts
    app.state.shutdown = shutdown  # ui.py's dashboards and granian's stop end their streams through it
    return app
