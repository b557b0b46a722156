"""`restmq token create|list|revoke`: manage bearer tokens in the backend directly (restmq/cli/backend.py:
they also work before the first server starts)."""

from __future__ import annotations

import datetime

import click
from rich.console import Console
from rich.table import Column, Table

from restmq.cli.backend import backend_options, parse_duration, run_on_backend
from restmq.core.tokens import RIGHTS, TokenRecord, new_sqs_key, new_token


def _duration(value: str | None) -> float | None:
    return None if value is None else parse_duration(value, "--expires")


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens."""


@token.command()
@click.option("--queues", required=True, help="Comma-separated queue patterns, e.g. 'orders.*,audit'.")
@click.option("--rights", required=True, help=f"Comma-separated rights: {', '.join(RIGHTS)}.")
@click.option("--expires", default=None, help="Lifetime such as 30m, 12h or 90d (default: never).")
@click.option("--note", default="", help="A note shown by `restmq token list`.")
@click.option("--sqs", is_flag=True, help="An SQS access key id and secret access key instead of a bearer token.")
@backend_options
def create(queues: str, rights: str, expires: str | None, note: str, sqs: bool, **backend: object) -> None:
    """Create a bearer token (only its hash is stored) or, with --sqs, an SQS access key (its secret is stored:
    Signature V4 needs it), and print it once. On a ring, every node must be reached."""
    patterns = tuple(p.strip() for p in queues.split(",") if p.strip())
    granted = tuple(r.strip() for r in rights.split(",") if r.strip())
    if sqs:
        _create_sqs_key(patterns, granted, expires, note, backend)
        return
    try:
        secret, record = new_token(patterns, granted, _duration(expires), note)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    run_on_backend(backend, lambda store: store.save_token(record.id, record.to_json()))
    click.echo(secret)
    click.echo(f"token {record.id}: {','.join(granted)} on {','.join(patterns)} (shown once; keep it safe)", err=True)


def _create_sqs_key(
    patterns: tuple[str, ...], granted: tuple[str, ...], expires: str | None, note: str, backend: dict[str, object]
) -> None:
    """Print the key as the AWS SDKs read it from the environment (docs/security.md#sqs-access-keys)."""
    try:
        key_id, secret, record = new_sqs_key(patterns, granted, _duration(expires), note)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    run_on_backend(backend, lambda store: store.save_token(record.id, record.to_json()))
    click.echo(f"AWS_ACCESS_KEY_ID={key_id}")
    click.echo(f"AWS_SECRET_ACCESS_KEY={secret}")
    click.echo(
        f"sqs key {key_id}: {','.join(granted)} on {','.join(patterns)} (secret shown once; keep it safe). "
        "Any region works; point the SDK's endpoint_url at this server.",
        err=True,
    )


@token.command(name="list")
@backend_options
def list_tokens(**backend: object) -> None:
    """List tokens and SQS access keys (ids, scopes, expiry; never the secrets)."""
    raw = run_on_backend(backend, lambda store: store.list_tokens())
    table = Table(Column("id", no_wrap=True, min_width=12), "kind", "queues", "rights", "created", "expires", "note")
    for record in sorted((TokenRecord.from_json(v) for v in raw.values()), key=lambda r: r.created):
        expires = _when(record.expires) + (" (expired)" if record.expired() else "") if record.expires else "never"
        kind = "sqs" if record.sqs_secret is not None else "bearer"
        table.add_row(
            record.id,
            kind,
            ",".join(record.queues),
            ",".join(record.rights),
            _when(record.created),
            expires,
            record.note,
        )
    Console().print(table)


@token.command()
@click.argument("token_id")
@backend_options
def revoke(token_id: str, **backend: object) -> None:
    """Revoke a token by id (an SQS access key by its access key id): servers refuse it within 5 seconds and
    close the streams opened with it. On a ring, every node must be reached; otherwise this fails (the nodes
    reached still revoke it)."""
    if token_id.startswith("rmq_"):
        token_id = token_id[4:].partition("_")[0]
    hint = f"Run `restmq token revoke {token_id}` again once every node is up"
    if not run_on_backend(backend, lambda store: store.delete_token(token_id), hint):
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"revoked {token_id}")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
