"""The ingest adapters' options (docs/ingest.md) as settings, and the refusals `restmq serve` makes before it
starts: bad queue names or networks, a syslog listener open to the network with nobody allowed, a port in use."""

from __future__ import annotations

import socket
from typing import Any

import click

from restmq.cli.auth_mode import is_loopback
from restmq.cli.sockets import listening_socket
from restmq.config import Limits, Settings
from restmq.core.names import check_queue_name
from restmq.errors import InvalidQueueName
from restmq.web.addresses import parse_networks

_QUEUES = {"--collectd-data-queue": "collectd_data_queue", "--collectd-event-queue": "collectd_event_queue"}
_PASSED = ("syslog_port", "syslog_host", "syslog_queue_prefix", "syslog_max_line", "syslog_max_connections")


def ingest_settings(options: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The Settings fields of the ingest options, checked."""
    for flag, name in {**_QUEUES, "--syslog-queue-prefix": "syslog_queue_prefix"}.items():
        try:  # a prefix must make a valid name with a host after it
            check_queue_name(options[name] + ("x" if name == "syslog_queue_prefix" else ""))
        except InvalidQueueName as exc:
            raise click.BadParameter(exc.message, param_hint=flag) from None
    allow = tuple(item.strip() for value in options["syslog_allow"] for item in value.split(",") if item.strip())
    try:
        parse_networks(allow)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--syslog-allow") from None
    if options["syslog_max_line"] > limits.max_value:
        raise click.BadParameter(f"at most --max-value ({limits.max_value})", param_hint="--syslog-max-line")
    return {**{name: options[name] for name in (*_QUEUES.values(), *_PASSED)}, "syslog_allow": allow}


def check_syslog_listener(settings: Settings) -> None:
    """Syslog has no authentication: off loopback it needs --syslog-allow (or --insecure-open). Every worker
    binds the port with SO_REUSEPORT, which would share a port in use silently: bind once without it first."""
    if not settings.syslog_port:
        return
    if not is_loopback(settings.syslog_host) and not settings.syslog_allow and not settings.insecure_open:
        raise click.UsageError(
            f"--syslog-host {settings.syslog_host} lets anyone who reaches it write syslog queues (syslog has no "
            "authentication): name the senders with --syslog-allow CIDR,... (or accept it with --insecure-open)"
        )
    listening_socket(settings.syslog_host, settings.syslog_port).close()
    family, kind, proto, _, address = socket.getaddrinfo(settings.syslog_host, 0, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind, proto) as udp:
        try:
            udp.bind((address[0], settings.syslog_port, *address[2:]))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen for syslog on UDP {settings.syslog_host}:{settings.syslog_port}: {exc.strerror or exc}"
            ) from None
