"""`restmq serve` and `restmq config`: options, the embedded engine, the HTTP server.

Every option reads, in order of precedence: the command line, a `RESTMQ_<OPTION>` environment
variable, the `--config` TOML file (same names as the options), the default.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import tomllib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from restmq.cli.ingest import check_syslog_listener, ingest_settings
from restmq.config import Limits, Settings
from restmq.errors import EngineError, RestMQError
from restmq.push.allow import AllowList
from restmq.storage.urls import redact_list, split_urls  # pure string work: loads no backend client
from restmq.web.addresses import parse_networks

if TYPE_CHECKING:
    from restmq.storage.engine import EmbeddedEngine
    from restmq.web.auth import AclRule

log = logging.getLogger("restmq")
SETTINGS_ENV = "RESTMQ_INTERNAL_SETTINGS"  # hands the settings to worker processes
GRACEFUL_SHUTDOWN = 10  # seconds in-flight requests get to finish once the server is told to stop
DEFAULT_LIMITS = Limits()
DEFAULT_SETTINGS = Settings()


def _load_config_file(ctx: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """Eager callback: the TOML file becomes the defaults of every other option."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param=param) from exc
    names = {}  # a key may be named like the option (cors-origin, redis) or like its parameter (cors_origins)
    for p in ctx.command.params:
        if p.name:
            names[p.name] = p
            names.update((flag[2:].replace("-", "_"), p) for flag in p.opts if flag.startswith("--"))
    values = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise click.BadParameter(f"{path}: unknown settings {', '.join(unknown)}", param=param)
    for key, value in values.items():
        target = names[key]
        multiple = isinstance(target, click.Option) and target.multiple
        ctx.default_map = {
            **(ctx.default_map or {}),
            target.name: [value] if multiple and isinstance(value, str) else value,
        }
    return path


def option(*decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """click.option reading RESTMQ_<LONG_NAME> (the group's automatic prefix would add the command name)."""
    long_name = next(d for d in decls if d.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "RESTMQ_" + long_name[2:].upper().replace("-", "_"))
    return click.option(*decls, show_envvar=True, **kwargs)


# The ingest adapters (docs/ingest.md): collectd's write_http posts and the syslog listener.
INGEST_OPTIONS = [
    option(
        "--collectd-data-queue",
        default=DEFAULT_SETTINGS.collectd_data_queue,
        show_default=True,
        help="Queue of the value lists collectd's write_http posts to /collectd/data.",
    ),
    option(
        "--collectd-event-queue",
        default=DEFAULT_SETTINGS.collectd_event_queue,
        show_default=True,
        help="Queue of the notifications posted to /collectd/event.",
    ),
    option(
        "--syslog-port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Take syslog messages (RFC 5424 and 3164) on this TCP and UDP port, each queued as JSON in "
        "<--syslog-queue-prefix><host>. Syslog has no authentication: see --syslog-host and --syslog-allow.",
    ),
    option(
        "--syslog-host",
        default=DEFAULT_SETTINGS.syslog_host,
        show_default=True,
        help="Address the syslog listener binds. Another than loopback needs --syslog-allow (or --insecure-open).",
    ),
    option(
        "--syslog-allow",
        multiple=True,
        help="Addresses or CIDRs (comma list) syslog takes messages from; from others, TCP connections are closed "
        "and datagrams dropped. Unset: any sender that reaches --syslog-host.",
    ),
    option(
        "--syslog-queue-prefix",
        default=DEFAULT_SETTINGS.syslog_queue_prefix,
        show_default=True,
        help="Syslog queues are <prefix><host>; a host name that cannot be part of a queue name goes to "
        "<prefix>_invalid.",
    ),
    option(
        "--syslog-max-line",
        type=click.IntRange(min=480),
        default=DEFAULT_SETTINGS.syslog_max_line,
        show_default=True,
        help="Bytes per syslog message; longer ones are counted and skipped.",
    ),
    option(
        "--syslog-max-connections",
        type=click.IntRange(min=1),
        default=DEFAULT_SETTINGS.syslog_max_connections,
        show_default=True,
        help="Open syslog TCP connections per server process; more are closed at once.",
    ),
]

# Push delivery to webhooks (docs/push.md): off unless targets are allowed.
PUSH_OPTIONS = [
    option(
        "--push-allow",
        multiple=True,
        help="Push targets allowed (comma list): host names, *.domain, IP addresses or CIDRs, each optionally "
        "prefixed with the one scheme it allows (http:// or https://; a name allows https only unless so prefixed). "
        "Loopback, private and link-local addresses only through an address or CIDR listed here. Unset: push off.",
    ),
]

OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=True,
        callback=_load_config_file,
        help="TOML file with option defaults (keys named like the options: port = 9000).",
    ),
    option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help="Address to listen on (:: takes IPv6 and IPv4 connections, 0.0.0.0 IPv4 only).",
    ),
    option("--port", default=8888, show_default=True, type=click.IntRange(0, 65535)),
    option(
        "--data-dir",
        default="./restmq-data",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Embedded engine: where its AOF, socket and lock live.",
    ),
    option(
        "--redis",
        "redis_urls",
        multiple=True,
        help="External Redis/Valkey URL (redis://, rediss://, unix://). Repeat it, or give a comma list, "
        "for a consistent-hash ring; add ?weight=N to weigh a node.",
    ),
    option("--redis-cluster", default=None, help="Redis Cluster seed URL."),
    option(
        "--ring-placement",
        type=click.Choice(["static", "capacity"]),
        default="static",
        show_default=True,
        help="Ring weights: static (the ?weight=N given), or capacity (measured headroom; docs/scaling.md).",
    ),
    option(
        "--ring-placement-interval",
        type=click.FloatRange(0.1, 3600),
        default=30.0,
        show_default=True,
        help="Capacity placement: seconds between two recomputations of the ring's weights.",
    ),
    option(
        "--fsync",
        type=click.Choice(["everysec", "always"]),
        default="everysec",
        show_default=True,
        help=(
            "Embedded engine AOF fsync: everysec may lose the last 1-2 s of adds on an OS crash, or on an engine "
            "crash while the disk is slow; always loses nothing."
        ),
    ),
    option("--engine-binary", default=None, help="valkey-server/redis-server to embed."),
    option(
        "--acl",
        default=None,
        type=click.Path(dir_okay=False),
        help="acl.conf file (the original format: host rules and Basic credentials per section).",
    ),
    option("--workers", default=1, show_default=True, type=click.IntRange(1, 64)),
    option(
        "--server",
        type=click.Choice(["uvicorn", "granian"]),
        default="uvicorn",
        show_default=True,
        help="HTTP server: uvicorn, or granian (Rust; always serves from worker processes, even with one worker).",
    ),
    option(
        "--insecure-open",
        is_flag=True,
        help="Allow a non-loopback --host without effective authentication (--auth none, an ACL file without "
        "rules, no tokens): anyone who can reach the port may read and write every queue.",
    ),
    option(
        "--coalesce/--no-coalesce",
        default=True,
        show_default=True,
        help="Send the backend commands of requests that arrive together in one round trip.",
    ),
    option(
        "--plain-batches",
        is_flag=True,
        help="Write a batch add without options as plain commands in MULTI/EXEC rather than a script: less engine "
        "CPU per message, but two adds running at once keep the order they reserved numbers in, not the order they "
        "finished in (docs/performance.md, item 27). Single nodes and rings; Redis Cluster always runs the script.",
    ),
    option("--tls-cert", default=None, type=click.Path(dir_okay=False), help="TLS certificate."),
    option("--tls-key", default=None, type=click.Path(dir_okay=False), help="TLS private key."),
    option(
        "--cors-origin",
        "cors_origins",
        multiple=True,
        help="Let pages on this origin use the server from a browser (repeatable): CORS, cross-site requests, "
        "WebSockets and their auth cookie. * allows any origin, without credentials. Others get 403.",
    ),
    option(
        "--auth",
        type=click.Choice(["tokens", "acl", "none"]),
        default=None,
        help="Authentication: tokens (a bearer token on every request, even before any exists), acl (the --acl "
        "file's rules; tokens accepted as credentials), none. Unset: the --acl file, plus tokens once any "
        "exists; without --acl, tokens once any exists (on loopback; elsewhere only if some exist at start). "
        "Once tokens are required they stay required. A non-loopback --host needs tokens or acl.",
    ),
    option(
        "--forwarded-allow-ips",
        multiple=True,
        help="Proxies (addresses or CIDRs, comma list) whose X-Forwarded-For/X-Forwarded-Proto are believed; "
        "from anyone else these headers are ignored.",
    ),
    option(
        "--allowed-hosts",
        multiple=True,
        help="Host header values served besides localhost, the loopback addresses, --host and this machine's "
        "own addresses (comma list; *.example.com matches subdomains; * any). Others get 421 (DNS rebinding).",
    ),
    option("--jsonp", is_flag=True, help="Wrap JSON replies in callback=NAME(...) (lets any web page read them)."),
    option(
        "--compat",
        type=click.Choice(["2010"]),
        default=None,
        help="Reply shapes of another RestMQ: 2010 answers as the 2010 server did (bodies, redirects, WebSocket "
        "echo) and turns --jsonp on. See docs/compat.md.",
    ),
    option("--max-body", default=DEFAULT_LIMITS.max_body, show_default=True, help="Bytes per body."),
    option("--max-value", default=DEFAULT_LIMITS.max_value, show_default=True, help="Bytes per message."),
    option("--max-batch", default=DEFAULT_LIMITS.max_batch, show_default=True, help="Messages per batch."),
    option(
        "--max-frame",
        default=DEFAULT_LIMITS.max_frame,
        show_default=True,
        help="Bytes per WebSocket frame.",
    ),
    option(
        "--max-streams",
        default=DEFAULT_LIMITS.max_streams,
        show_default=True,
        help="Streams per process.",
    ),
    option(
        "--max-streams-per-client",
        default=DEFAULT_LIMITS.max_streams_per_client,
        show_default=True,
        help="Streams per client address per process.",
    ),
    option(
        "--max-replay-bytes",
        type=click.IntRange(min=0),
        default=DEFAULT_LIMITS.max_replay_bytes,
        show_default=True,
        help="Bytes of history an SSE Last-Event-ID replay may send (older history: a gap event).",
    ),
    option(
        "--max-peek-bytes",
        type=click.IntRange(min=0),
        default=DEFAULT_LIMITS.max_peek_bytes,
        show_default=True,
        help="Bytes of message values one /peek answer or /j page may hold (then truncated).",
    ),
    option(
        "--max-page",
        default=DEFAULT_LIMITS.max_page,
        type=click.IntRange(min=1),
        show_default=True,
        help="Queues per page of GET /q/, /stats/ and the dashboard (the default and largest limit=).",
    ),
    option(
        "--metrics-queues",
        default=DEFAULT_LIMITS.metrics_queues,
        type=click.IntRange(min=0),
        show_default=True,
        help="Queues with series of their own in /metrics, the first by name (0: none); totals cover all.",
    ),
    option(
        "--sse-retry",
        default=3.0,
        type=click.FloatRange(0.1, 3600.0),
        show_default=True,
        help="Seconds SSE clients wait before reconnecting (the retry: field; the Python client's backoff base).",
    ),
    option(
        "--idle-timeout",
        default=DEFAULT_LIMITS.idle_timeout,
        show_default=True,
        help="Keep-alive seconds.",
    ),
    option(
        "--body-timeout",
        default=DEFAULT_LIMITS.body_timeout,
        show_default=True,
        help="Seconds to send a body.",
    ),
    option(
        "--backend-timeout",
        default=DEFAULT_SETTINGS.backend_timeout,
        type=click.FloatRange(min=0),
        show_default=True,
        help="Seconds a request's backend work may take, whatever the backend does; then 503 (0: no limit).",
    ),
    *INGEST_OPTIONS,
    *PUSH_OPTIONS,
    option(
        "--sqs-port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Also serve the Amazon SQS API on this port, where every request is SQS (as ElasticMQ's 9324); the "
        "main port serves it too. One uvicorn worker only for now. See docs/sqs.md.",
    ),
    option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
    ),
    option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True),
]


def server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The serve options, each reading RESTMQ_<OPTION> whatever subcommand uses them."""
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def _tokens_exist(settings: Settings) -> bool:
    """Whether the backend holds any bearer token (then every request needs credentials)."""
    from restmq.storage.factory import open_store

    async def check() -> bool:
        store = open_store(settings.redis, settings.redis_cluster)
        try:
            return bool(await store.list_tokens())
        finally:
            await store.close()

    try:
        return asyncio.run(check())
    except RestMQError:  # the backend cannot say: no evidence of access control
        return False


def _push_allow(options: dict[str, Any]) -> tuple[str, ...]:
    """--push-allow's rules, each checked (restmq/push/allow.py)."""
    rules = _comma_list(options["push_allow"])
    try:
        AllowList(rules)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--push-allow") from None
    return rules


def _comma_list(values: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable option whose values may also be comma lists: ("a,b", "c") -> ("a", "b", "c")."""
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def build_settings(options: dict[str, Any]) -> Settings:
    urls = split_urls(options["redis_urls"])
    limit_names = {
        "max_body",
        "max_value",
        "max_batch",
        "max_frame",
        "max_streams",
        "max_streams_per_client",
        "max_replay_bytes",
        "max_peek_bytes",
        "max_page",
        "metrics_queues",
    }
    limits = Limits(
        **{name: options[name] for name in limit_names},
        idle_timeout=options["idle_timeout"],
        body_timeout=options["body_timeout"],
    )
    if bool(options["tls_cert"]) != bool(options["tls_key"]):
        raise click.UsageError("--tls-cert and --tls-key go together")
    proxies = _comma_list(options["forwarded_allow_ips"])
    try:
        parse_networks(proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--forwarded-allow-ips") from None
    ingest = ingest_settings(options, limits)
    return Settings(
        **ingest,
        push_allow=_push_allow(options),
        host=options["host"],
        port=options["port"],
        data_dir=options["data_dir"],
        redis=urls,
        redis_cluster=options["redis_cluster"],
        ring_placement=options["ring_placement"],
        ring_placement_interval=options["ring_placement_interval"],
        fsync=options["fsync"],
        engine_binary=options["engine_binary"],
        acl=options["acl"],
        workers=options["workers"],
        log_level=options["log_level"],
        log_format=options["log_format"],
        cors_origins=tuple(options["cors_origins"]),
        forwarded_allow_ips=proxies,
        allowed_hosts=_comma_list(options["allowed_hosts"]),
        jsonp=options["jsonp"],
        auth=options["auth"] or "auto",
        tls_cert=options["tls_cert"],
        tls_key=options["tls_key"],
        insecure_open=options["insecure_open"],
        coalesce=options["coalesce"],
        plain_batches=options["plain_batches"],
        backend_timeout=options["backend_timeout"],
        server=options["server"],
        sse_retry=options["sse_retry"],
        compat=options["compat"] or "",
        sqs_port=_sqs_port(options),
        limits=limits,
    )


def _sqs_port(options: dict[str, Any]) -> int | None:
    port: int | None = options["sqs_port"]
    if port is not None and (options["workers"] != 1 or options["server"] != "uvicorn"):
        raise click.UsageError("--sqs-port runs with one uvicorn worker for now; the main port serves SQS too")
    return port


@click.command()
@server_options
def serve(**options: Any) -> None:
    """Serve queues over HTTP on HOST:PORT.

    With no --redis or --redis-cluster, RestMQ runs its own embedded Valkey engine in --data-dir
    (AOF persistence; data survives restarts). Every option also reads RESTMQ_<OPTION>, e.g.
    RESTMQ_PORT=9000 or RESTMQ_REDIS=redis://10.0.0.5:6379, and the --config TOML file.
    """
    from restmq.cli.auth_mode import check_auth_options, resolve_auth  # the server's imports load only to serve
    from restmq.web.observe import configure_logging

    settings = build_settings(options)
    configure_logging(settings.log_level, settings.log_format)
    rules = _load_acl(settings)
    check_auth_options(settings, rules)
    _check_allowed_hosts(settings)
    check_syslog_listener(settings)
    engine = _start_engine(settings)
    if engine is not None:
        settings = replace(settings, redis=(engine.url,))
    try:
        plan = resolve_auth(settings, rules, functools.partial(_tokens_exist, settings))
    except click.UsageError:
        if engine is not None:
            engine.stop()
        raise
    settings = replace(settings, auth=plan.mode)  # workers get the resolved mode with the settings
    log.info("auth: %s", plan.described)
    if plan.warning:
        log.warning("%s", plan.warning)
    # uvicorn re-raises the stop signal once it has shut down; catch it here so that the engine is
    # stopped last, cleanly, before this process exits.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    _run_supervised(settings, engine)
    log.info("RestMQ stopped")


def _load_acl(settings: Settings) -> dict[str, AclRule] | None:
    """The --acl rules; a bad file stops start-up with its error, before anything starts. What its 2010
    entries became is logged here, once (worker processes read the file again, silently)."""
    if not settings.acl:
        return None
    from restmq.web.acl_file import read_acl

    try:
        parsed = read_acl(settings.acl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--acl") from None
    for note in parsed.notes:
        log.info("acl: %s", note)
    for warning in parsed.warnings:
        log.warning("acl: %s", warning)
    return parsed.rules


def _start_engine(settings: Settings) -> EmbeddedEngine | None:
    """The embedded engine, started, when no --redis or --redis-cluster names a backend."""
    if not settings.embedded:
        return None
    from restmq.storage.engine import EmbeddedEngine

    engine = EmbeddedEngine(settings.data_dir, fsync=settings.fsync, binary=settings.engine_binary)
    try:
        engine.start()
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
    return engine


def _run_supervised(settings: Settings, engine: EmbeddedEngine | None) -> None:
    """Run the server; the embedded engine, if any, is watched meanwhile (restarted if it dies) and outlives it."""
    supervisor = None
    if engine is not None:
        from restmq.storage.supervisor import EngineSupervisor

        supervisor = EngineSupervisor(engine)  # restarts a dead engine; stops the server if it cannot
        supervisor.start()
    try:
        run(settings)
    finally:
        if supervisor is not None:
            supervisor.stop()
    if supervisor is not None and supervisor.gave_up:
        from restmq.storage.supervisor import ENGINE_FAILED_EXIT

        sys.exit(ENGINE_FAILED_EXIT)  # the reason is logged once, where the supervisor gave up


def _check_allowed_hosts(settings: Settings) -> None:
    """A bad --allowed-hosts entry stops start-up; a wildcard bind without one is told what it serves."""
    from restmq.web.hosts import WILDCARD_BINDS, HostAllowlist

    try:
        HostAllowlist(settings.allowed_hosts, settings.host)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-hosts") from None
    if settings.host in WILDCARD_BINDS and not settings.allowed_hosts:
        log.info(
            "serving requests for localhost and this machine's own addresses; requests naming it otherwise get "
            "421 (DNS rebinding protection): list its names with --allowed-hosts"
        )


@click.command(name="config")
@server_options
def show_config(**options: Any) -> None:
    """Show the settings `restmq serve` would use with these options, and where each comes from."""
    from rich.console import Console
    from rich.table import Table

    ctx = click.get_current_context()
    flags = {p.name: p.opts[0] for p in ctx.command.params if p.name and p.opts}  # redis_urls -> --redis
    origins = {"COMMANDLINE": "command line", "ENVIRONMENT": "environment", "DEFAULT_MAP": "config file"}
    table = Table("option", "value", "from")
    for name, value in options.items():
        source = ctx.get_parameter_source(name)
        shown = ",".join(value) if isinstance(value, tuple) else ("" if value is None else str(value))
        if name in ("redis_urls", "redis_cluster"):
            shown = redact_list(shown)
        table.add_row(flags.get(name, name), shown, origins.get(source.name, "default") if source else "default")
    Console().print(table)


def run(settings: Settings) -> None:
    scheme = "https" if settings.tls_cert else "http"
    backend = redact_list(settings.redis_cluster or ",".join(settings.redis))
    log.info(
        "RestMQ on %s://%s:%d, %d worker(s) on %s, backend %s",
        scheme,
        f"[{settings.host}]" if ":" in settings.host else settings.host,
        settings.port,
        settings.workers,
        settings.server,
        backend,
    )
    if settings.tls_cert:
        _check_certificate(settings)
    if settings.server == "granian":
        from restmq.cli.granian_server import run_granian

        run_granian(settings)
    else:
        run_uvicorn(settings)


def _check_certificate(settings: Settings) -> None:
    """Load the certificate once here, so that a bad one is a one-line error before any worker starts."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert or "", settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(
            f"cannot load --tls-cert {settings.tls_cert} and --tls-key {settings.tls_key}: {exc}"
        ) from None


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "access_log": settings.log_level == "debug",
        "loop": "uvloop",
        "http": "restmq.cli.uvicorn_http:TimeBoundProtocol",  # httptools, with every connection bounded in time
        "proxy_headers": False,  # restmq/web/peers.py reads them, only from --forwarded-allow-ips
        "ws": "restmq.cli.uvicorn_ws:BatchingWebSocketProtocol",  # websockets-sansio, many frames per write
        "ws_max_size": settings.limits.max_frame,
        "lifespan": "on",
        "timeout_keep_alive": settings.limits.idle_timeout,  # a float: int() made 0.5 s close every connection
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
        "server_header": False,
    }
    if settings.workers == 1:
        from restmq.cli.sockets import listening_socket
        from restmq.web.app import create_app

        sock = listening_socket(settings.host, settings.port)  # dual-stack on ::, as on every path
        sockets = [sock]
        if settings.sqs_port is not None:  # the same app: it tells SQS-port requests by their server port
            sockets.append(listening_socket(settings.host, settings.sqs_port))
        server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        server.run(sockets=sockets)
        if not server.started:  # the app could not start (its error is logged), as uvicorn.run says
            sys.exit(3)
        return
    from restmq.cli.workers import run_workers

    run_workers(settings, options)


def app_from_env() -> object:
    """Worker-process entry point for --workers N (settings arrive through the environment)."""
    from restmq.web.app import create_app
    from restmq.web.observe import configure_logging

    raw = json.loads(os.environ[SETTINGS_ENV])
    limits = Limits(**raw.pop("limits"))
    for name, value in raw.items():
        if isinstance(value, list):  # JSON has no tuples
            raw[name] = tuple(value)
    configure_logging(raw["log_level"], raw["log_format"])
    return create_app(Settings(**raw, limits=limits))
