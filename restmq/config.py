"""Server settings: one frozen value built by the CLI from flags and RESTMQ_* variables. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    max_body: int = 8 * 1024 * 1024  # bytes per request body (413 above)
    max_value: int = 1024 * 1024  # bytes per message value
    max_batch: int = 10_000  # messages per batch add
    max_count: int = 1_000  # messages per GET ?count=
    max_wait: float = 60.0  # seconds a long-poll may wait
    max_lease: float = 12 * 3600.0  # seconds a lease may last
    max_delay: float = 14 * 86400.0  # seconds a message may be delayed
    idempotency_window: float = 300.0  # seconds an Idempotency-Key is remembered
    max_streams: int = 10_000  # streaming connections per server process
    max_streams_per_client: int = 100  # streaming connections per client address per process
    max_frame: int = 1024 * 1024  # bytes per WebSocket frame
    body_timeout: float = 30.0  # seconds to receive a request body (slow senders get 408)
    idle_timeout: float = 15.0  # seconds an idle keep-alive connection stays open
    max_replay_bytes: int = 16 * 1024 * 1024  # bytes of history one SSE Last-Event-ID replay may send
    max_peek_bytes: int = 8 * 1024 * 1024  # bytes of messages one /peek answer may hold
    max_page: int = 1000  # queues per page of GET /q/, /stats/ and the dashboard (limit=, after=)
    metrics_queues: int = 1000  # queues with their own series in /metrics (the rest are summed)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    data_dir: str = "./restmq-data"
    redis: tuple[str, ...] = ()  # external node URLs; more than one builds a ring
    redis_cluster: str | None = None
    ring_placement: str = "static"  # capacity: ring weights follow the nodes' measured headroom (docs/scaling.md)
    ring_placement_interval: float = 30.0  # seconds between two placement recomputations (capacity mode)
    fsync: str = "everysec"
    engine_binary: str | None = None
    acl: str | None = None
    workers: int = 1
    log_level: str = "info"
    log_format: str = "text"
    cors_origins: tuple[str, ...] = ()
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-For/-Proto are believed
    allowed_hosts: tuple[str, ...] = ()  # Host header values served; empty: localhost names, loopback, the bound host
    jsonp: bool = False  # callback= wraps JSON replies (lets any web page read them)
    auth: str = "auto"  # tokens | acl | none; auto: acl with --acl, else tokens once any token exists
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_open: bool = False
    reaper_interval: float = 0.25
    backend_timeout: float = 5.0  # seconds a request's backend work may take (0: no deadline), then 503
    coalesce: bool = True  # pipeline the backend commands of concurrent requests
    plain_batches: bool = False  # batch adds in MULTI/EXEC (storage/plain_add.py): cheaper, weaker order under races
    server: str = "uvicorn"  # the HTTP server: "uvicorn" or "granian"
    sse_retry: float = 3.0  # seconds an SSE client is told (retry:) to wait before it reconnects
    compat: str = ""  # "2010": the 2010 server's reply shapes (restmq/web/compat2010.py); "": this server's
    # Ingest adapters (docs/ingest.md): collectd's write_http posts, and syslog on --syslog-port.
    collectd_data_queue: str = "collectd_data"
    collectd_event_queue: str = "collectd_event"
    syslog_port: int | None = None  # None: no syslog listener
    syslog_host: str = "127.0.0.1"  # syslog has no authentication: loopback unless told
    syslog_queue_prefix: str = "syslogd:"  # a message goes to <prefix><host>
    syslog_max_line: int = 8192  # bytes per syslog message (longer ones are counted and skipped)
    syslog_max_connections: int = 256  # open syslog TCP connections per server process
    syslog_allow: tuple[str, ...] = ()  # source addresses or CIDRs syslog takes messages from; empty: any
    push_allow: tuple[
        str, ...
    ] = ()  # push targets allowed (HOST, *.DOMAIN, IP, CIDR, scheme:// prefix); empty: push off
    sqs_port: int | None = None  # also serve the SQS API on this port (every request there is SQS)
    limits: Limits = field(default_factory=Limits)

    @property
    def embedded(self) -> bool:
        return not self.redis and not self.redis_cluster
