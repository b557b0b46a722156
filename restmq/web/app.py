"""create_app(settings): the Starlette application. The lifespan opens the Store, builds the
QueueService and runs this process's reaper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware

from restmq.config import Settings
from restmq.core.dispatch import Streams
from restmq.core.service import QueueService
from restmq.errors import BackendUnavailable, RestMQError
from restmq.storage.base import Store
from restmq.storage.factory import open_store
from restmq.web.auth import Access, load_acl
from restmq.web.errors import CallbackGuard, restmq_error, unexpected_error
from restmq.web.limits import StreamSlots
from restmq.web.routes import routes

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


def create_app(settings: Settings, store_factory: Callable[[], Store] | None = None) -> Starlette:
    def make_store() -> Store:
        if store_factory is not None:
            return store_factory()
        return open_store(settings.redis, settings.redis_cluster)

    acl = load_acl(settings.acl) if settings.acl else None  # a bad ACL file stops start-up

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = make_store()
        service = QueueService(store, settings.limits)
        app.state.service = service
        app.state.streams = streams = Streams(store, service.waiters)
        streams.start()
        app.state.settings = settings
        app.state.access = Access(store, acl)
        app.state.stream_slots = StreamSlots(settings.limits.max_streams, settings.limits.max_streams_per_client)
        reaper = asyncio.create_task(run_reaper(store, settings.reaper_interval), name="restmq-reaper")
        try:
            yield
        finally:
            await streams.close()
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            service.waiters.close()
            await store.close()

    return Starlette(
        routes=routes,
        middleware=[Middleware(CallbackGuard)],
        exception_handlers={RestMQError: restmq_error, Exception: unexpected_error},
        lifespan=lifespan,
    )
