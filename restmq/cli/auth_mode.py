"""The authentication `restmq serve` runs with: `--auth tokens|acl|none`, or (unset) a mode chosen at start-up.

- A non-loopback address needs effective authentication: tokens, or an ACL file with a rule (a
  section with hosts_allow or username/password). `--insecure-open` is the one explicit way around.
- `--auth acl` needs such a file; `--auth none` takes none.
- Unset: with --acl, the file's rules plus, once any token exists, tokens for good (today's
  behaviour, latched: see restmq/web/auth.py). Without it, tokens when any exist at start-up; on
  loopback otherwise open until the first token appears; elsewhere otherwise refused.

docs/security.md#safe-defaults is the user-facing account of these rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import click

from restmq.config import Settings
from restmq.web.auth import AclRule, open_categories

NO_RULE = "has no rule (no section with hosts_allow or username/password)"


@dataclass(frozen=True)
class AuthPlan:
    mode: str  # the Settings.auth the server (and every worker) runs with
    described: str  # for the start-up line "auth: ..."
    warning: str | None = None  # something the operator should know, logged as a warning


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost, or "": may reach other machines
        return False


def acl_has_rules(rules: dict[str, AclRule] | None) -> bool:
    return bool(rules) and any(rule.effective for rule in (rules or {}).values())


def check_auth_options(settings: Settings, rules: dict[str, AclRule] | None) -> None:
    """The refusals that need no backend: run before anything starts."""
    if settings.auth == "none" and settings.acl:
        raise click.UsageError("--auth none and --acl FILE contradict each other: say --auth acl to use the file")
    if settings.auth == "acl" and not settings.acl:
        raise click.UsageError("--auth acl needs --acl FILE")
    if settings.auth == "acl" and not acl_has_rules(rules):
        raise click.UsageError(f"--auth acl: {settings.acl} {NO_RULE}, so it would let anyone in")
    if settings.auth == "none" and not is_loopback(settings.host) and not settings.insecure_open:
        raise click.UsageError(
            f"refusing to listen on {settings.host} with --auth none: anyone who can reach it could read and "
            "write every queue; use --auth tokens or --auth acl, or say --insecure-open to accept anyone"
        )


def resolve_auth(settings: Settings, rules: dict[str, AclRule] | None, tokens_exist: Callable[[], bool]) -> AuthPlan:
    """The mode to run with. `tokens_exist` asks the backend (called only when the answer matters)."""
    public = not is_loopback(settings.host)
    if settings.auth != "auto":
        return _explicit(settings, rules, public)
    if settings.acl and (acl_has_rules(rules) or not public):
        described = f"acl ({settings.acl}), and bearer tokens too once any exists (no --auth given)"
        return AuthPlan("auto", described, _acl_warning(settings, rules, public))
    if tokens_exist():
        return AuthPlan("tokens", "tokens" + (f", with the host rules of {settings.acl}" if settings.acl else ""))
    if not public:
        return AuthPlan("auto", "none until a token is created, then tokens for good (loopback; no --auth given)")
    if settings.insecure_open:
        return AuthPlan(
            "auto",
            "none until a token is created, then tokens for good (--insecure-open)",
            f"listening on {settings.host} without authentication (--insecure-open)",
        )
    reason = f" ({settings.acl} {NO_RULE})" if settings.acl else ""
    raise click.UsageError(
        f"refusing to listen on {settings.host} without access control{reason}: give --acl FILE with a rule, "
        "say --auth tokens (or create tokens with `restmq token create`), "
        "or say --insecure-open to accept anyone who can reach it"
    )


def _explicit(settings: Settings, rules: dict[str, AclRule] | None, public: bool) -> AuthPlan:
    if settings.auth == "tokens":
        return AuthPlan("tokens", "tokens" + (f", with the host rules of {settings.acl}" if settings.acl else ""))
    if settings.auth == "acl":
        return AuthPlan("acl", f"acl ({settings.acl})", _acl_warning(settings, rules, public))
    warning = f"listening on {settings.host} without authentication (--insecure-open)" if public else None
    return AuthPlan("none", "none", warning)


def _acl_warning(settings: Settings, rules: dict[str, AclRule] | None, public: bool) -> str | None:
    """An ACL that keeps no one out, or on a public address leaves categories open, deserves a line in the log."""
    if not acl_has_rules(rules):
        return f"{settings.acl} {NO_RULE}: it keeps no one out"
    left_open = open_categories(rules or {})
    if not public or not left_open:
        return None
    return f"{settings.acl} lets anyone who can reach {settings.host} use {', '.join(left_open)}"
