"""`restmq serve`: start the embedded engine when no backend is given, then the HTTP server."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from dataclasses import asdict, replace

import click
import uvicorn

from restmq.config import Limits, Settings
from restmq.errors import EngineError

log = logging.getLogger("restmq")
SETTINGS_ENV = "RESTMQ_INTERNAL_SETTINGS"  # hands the settings to worker processes


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_urls(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(url.strip() for value in values for url in value.split(",") if url.strip())


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, show_envvar=True, help="Address to listen on.")
@click.option("--port", default=8888, show_default=True, show_envvar=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    default="./restmq-data",
    show_default=True,
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Embedded engine: where its AOF, socket and lock live.",
)
@click.option(
    "--redis",
    "redis_urls",
    multiple=True,
    show_envvar=True,
    help="External Redis/Valkey URL (redis://, rediss://, unix://) instead of the embedded engine.",
)
@click.option("--redis-cluster", default=None, show_envvar=True, help="Redis Cluster seed URL.")
@click.option(
    "--fsync",
    type=click.Choice(["everysec", "always"]),
    default="everysec",
    show_default=True,
    show_envvar=True,
    help="Embedded engine AOF fsync: everysec may lose the last second on an OS crash; always loses nothing.",
)
@click.option("--engine-binary", default=None, show_envvar=True, help="valkey-server/redis-server to embed.")
@click.option("--acl", default=None, show_envvar=True, type=click.Path(dir_okay=False), help="acl.conf file.")
@click.option("--workers", default=1, show_default=True, show_envvar=True, type=click.IntRange(1, 64))
@click.option("--insecure-open", is_flag=True, show_envvar=True, help="Allow a non-loopback address without an ACL.")
@click.option("--max-body", default=Limits.max_body, show_default=True, show_envvar=True, help="Bytes per body.")
@click.option("--max-batch", default=Limits.max_batch, show_default=True, show_envvar=True, help="Messages per batch.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    show_envvar=True,
)
def serve(
    host: str,
    port: int,
    data_dir: str,
    redis_urls: tuple[str, ...],
    redis_cluster: str | None,
    fsync: str,
    engine_binary: str | None,
    acl: str | None,
    workers: int,
    insecure_open: bool,
    max_body: int,
    max_batch: int,
    log_level: str,
) -> None:
    """Serve queues over HTTP on HOST:PORT.

    With no --redis or --redis-cluster, RestMQ runs its own embedded Valkey engine in --data-dir
    (AOF persistence; data survives restarts). Every option also reads RESTMQ_<OPTION>, e.g.
    RESTMQ_PORT=9000 or RESTMQ_REDIS=redis://10.0.0.5:6379.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _is_loopback(host) and not acl and not insecure_open:
        raise click.UsageError(
            f"refusing to listen on {host} without access control: give --acl FILE, or --insecure-open "
            "to accept anyone who can reach this address"
        )
    settings = Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        redis=_split_urls(redis_urls),
        redis_cluster=redis_cluster,
        fsync=fsync,
        engine_binary=engine_binary,
        acl=acl,
        workers=workers,
        log_level=log_level,
        limits=Limits(max_body=max_body, max_batch=max_batch),
    )
    engine = None
    if settings.embedded:
        from restmq.storage.engine import EmbeddedEngine

        engine = EmbeddedEngine(data_dir, fsync=fsync, binary=engine_binary)
        try:
            url = engine.start()
        except EngineError as exc:
            raise click.ClickException(str(exc)) from exc
        settings = replace(settings, redis=(url,))
    try:
        _run(settings)
    finally:
        if engine is not None:
            engine.stop()


def _run(settings: Settings) -> None:
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.log_level == "debug",
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    log.info(
        "RestMQ on http://%s:%d (backend %s)",
        settings.host,
        settings.port,
        settings.redis_cluster or ",".join(settings.redis),
    )
    if settings.workers == 1:
        from restmq.web.app import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("restmq.cli.serve:app_from_env", factory=True, workers=settings.workers, **options)  # type: ignore[arg-type]


def app_from_env() -> object:
    """Worker-process entry point for --workers N (settings arrive through the environment)."""
    from restmq.web.app import create_app

    raw = json.loads(os.environ[SETTINGS_ENV])
    limits = Limits(**raw.pop("limits"))
    raw["redis"] = tuple(raw["redis"])
    logging.basicConfig(level=raw["log_level"].upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings(**raw, limits=limits))


if __name__ == "__main__":
    sys.exit(serve())
