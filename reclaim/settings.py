"""One typed settings object built from the environment; every bad setting is reported at once.

Secrets are never settings: a setting names a secret (`..._SECRET_NAME`) and the value is read
through the Secrets port (Key Vault in Azure).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reclaim.domain.durations import parse_duration
from reclaim.domain.policy import is_valid_schedule
from reclaim.errors import ConfigurationError


class SettingsError(ConfigurationError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} bad setting(s)\n{listed}")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _https(text: str) -> str:
    if text and not text.startswith("https://"):
        raise ValueError(f"expected an https:// address, got {text!r}")
    return text.rstrip("/")


def _public_url(text: str) -> str:
    # http only for the local host on loopback (`python -m reclaim host`): links carry a token
    if text.startswith(("http://127.0.0.1", "http://localhost")):
        return text.rstrip("/")
    return _https(text)


def _scope(text: str) -> str:
    """An app-only scope: the resource's App ID URI followed by /.default."""
    text = text.strip()
    if text and (any(c.isspace() for c in text) or not text.endswith("/.default")):
        raise ValueError(
            f"expected one scope ending in /.default (e.g. https://graph.microsoft.com/.default), "
            f"got {text!r}"
        )
    return text


def _ldap_url(text: str) -> str:
    if text and not text.startswith(("ldaps://", "ldap://")):
        raise ValueError(f"expected ldaps://host[:port] or ldap://host[:port], got {text!r}")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {' | '.join(allowed)}, got {text!r}")
        return text

    return parse


def _schedule(text: str) -> str:
    if not is_valid_schedule(text):
        raise ValueError(f"expected an NCRONTAB schedule of six fields, got {text!r}")
    return text


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone like UTC or Europe/Zurich, got {text!r}"
        ) from None
    return text


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"expected a whole number above 0, got {text!r}")
    return value


def _positive_number(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a number above 0, got {text!r}")
    return value


def _duration(text: str) -> timedelta:
    return parse_duration(text)


def _retention(text: str) -> timedelta:
    value = parse_duration(text)
    if value < timedelta(days=1):  # compaction deletes finished requests older than this
        raise ValueError(f"expected a duration of at least 1d, like 400d, got {text!r}")
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _text(text: str) -> str:
    return text.strip()


def _audiences(text: str) -> tuple[str, ...]:
    """A comma list of the API's client id and/or App ID URI (api://...)."""
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    for value in values:
        if any(c.isspace() for c in value):
            raise ValueError(
                f"expected client ids or App ID URIs separated by commas, got {text!r}"
            )
    return values


def _default_state_db() -> str:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "reclaim" / "state.sqlite3")


# attribute -> (environment variable, parser, default). The order is the order of the sample file.
SETTINGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    # core
    "policies_file": ("RECLAIM_POLICIES_FILE", _path, "policies.yaml"),
    "state_backend": ("RECLAIM_STATE_BACKEND", _choice("sqlite", "tables"), "sqlite"),
    "state_db": ("RECLAIM_STATE_DB", _path, ""),
    "kill_switch": ("RECLAIM_KILL_SWITCH", _bool, "false"),
    "secrets_source": ("RECLAIM_SECRETS_SOURCE", _choice("keyvault", "env"), "keyvault"),
    "key_vault_url": ("RECLAIM_KEY_VAULT_URL", _https, ""),
    "secret_cache_ttl": ("RECLAIM_SECRET_CACHE_TTL", _duration, "5m"),
    # the identity that reads Key Vault: empty authority = RECLAIM_AUTHORITY_HOST's cloud; empty
    # client id = azure-identity's own choice (AZURE_CLIENT_ID, else the system-assigned identity)
    "key_vault_authority_host": ("RECLAIM_KEY_VAULT_AUTHORITY_HOST", _https, ""),
    "key_vault_client_id": ("RECLAIM_KEY_VAULT_CLIENT_ID", _text, ""),
    "ca_bundle": ("RECLAIM_CA_BUNDLE", _text, ""),
    # Microsoft Graph (Entra ID)
    "tenant_id": ("RECLAIM_TENANT_ID", _text, ""),
    "client_id": ("RECLAIM_CLIENT_ID", _text, ""),
    "graph_client_secret_name": ("RECLAIM_GRAPH_CLIENT_SECRET_NAME", _text, ""),
    "graph_certificate_name": ("RECLAIM_GRAPH_CERTIFICATE_NAME", _text, ""),
    "graph_base_url": ("RECLAIM_GRAPH_BASE_URL", _https, "https://graph.microsoft.com/v1.0"),
    "authority_host": ("RECLAIM_AUTHORITY_HOST", _https, "https://login.microsoftonline.com"),
    # the token audience; empty = the origin of RECLAIM_GRAPH_BASE_URL (a proxy needs Graph's)
    "graph_scope": ("RECLAIM_GRAPH_SCOPE", _scope, ""),
    # the manage routes: Entra ID tokens with app roles (Reclaim.Admin, Reclaim.Reader)
    "admin_audience": ("RECLAIM_ADMIN_AUDIENCE", _audiences, ""),
    "platform_auth": ("RECLAIM_PLATFORM_AUTH", _bool, "false"),
    # Active Directory (LDAP)
    "ldap_url": ("RECLAIM_LDAP_URL", _ldap_url, ""),
    "ldap_base_dn": ("RECLAIM_LDAP_BASE_DN", _text, ""),
    "ldap_bind_dn": ("RECLAIM_LDAP_BIND_DN", _text, ""),
    "ldap_password_secret_name": ("RECLAIM_LDAP_PASSWORD_SECRET_NAME", _text, ""),
    "ldap_ca_file": ("RECLAIM_LDAP_CA_FILE", _text, ""),
    "ldap_server_name": ("RECLAIM_LDAP_SERVER_NAME", _text, ""),
    "ldap_start_tls": ("RECLAIM_LDAP_START_TLS", _bool, "false"),
    "ldap_insecure": ("RECLAIM_LDAP_INSECURE", _bool, "false"),
    # Nexthink
    "nexthink_base_url": ("RECLAIM_NEXTHINK_BASE_URL", _https, ""),
    "nexthink_token_url": ("RECLAIM_NEXTHINK_TOKEN_URL", _https, ""),
    "nexthink_client_id": ("RECLAIM_NEXTHINK_CLIENT_ID", _text, ""),
    "nexthink_client_secret_name": ("RECLAIM_NEXTHINK_CLIENT_SECRET_NAME", _text, ""),
    "nexthink_answers_query_id": (
        "RECLAIM_NEXTHINK_ANSWERS_QUERY_ID",
        _text,
        "#license_reclamation_answers",
    ),
    "nexthink_executions_query_id": (
        "RECLAIM_NEXTHINK_EXECUTIONS_QUERY_ID",
        _text,
        "#license_reclamation_executions",
    ),
    # the input ids of the remote action (Nexthink does not publish the pack's)
    "nexthink_sam_account_name_input": (
        "RECLAIM_NEXTHINK_SAM_INPUT",
        _text,
        "SamAccountName",
    ),
    "nexthink_group_name_input": ("RECLAIM_NEXTHINK_GROUP_INPUT", _text, "GroupName"),
    # the zone of times written without an offset in exports (Nexthink documents none)
    "nexthink_timezone": ("RECLAIM_NEXTHINK_TIMEZONE", _timezone, "UTC"),
    # the function set
    "scheduler_schedule": ("RECLAIM_SCHEDULER_SCHEDULE", _schedule, "0 */5 * * * *"),
    "expiry_schedule": ("RECLAIM_EXPIRY_SCHEDULE", _schedule, "0 */15 * * * *"),
    "removal_queue": ("RECLAIM_REMOVAL_QUEUE", _text, "reclaim-removals"),
    "table_prefix": ("RECLAIM_TABLE_PREFIX", _text, "reclaim"),
    # decision records and finished requests older than this are compacted (the ledger is kept)
    "retention": ("RECLAIM_RETENTION", _retention, "400d"),
    "webhook_secret_name": ("RECLAIM_WEBHOOK_SECRET_NAME", _text, "reclaim-webhook-secret"),
    "webhook_max_bytes": ("RECLAIM_WEBHOOK_MAX_BYTES", _positive_int, "65536"),
    "webhook_tolerance": ("RECLAIM_WEBHOOK_TOLERANCE", _duration, "5m"),
    "outbound_webhook_secret_name": ("RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME", _text, ""),
    "digest_webhook_secret_name": ("RECLAIM_DIGEST_WEBHOOK_SECRET_NAME", _text, ""),
    # campaign channels email (the mailbox it sends from) and teams (its webhook URL's secret)
    "mail_sender": ("RECLAIM_MAIL_SENDER", _text, ""),
    "teams_webhook_secret_name": ("RECLAIM_TEAMS_WEBHOOK_SECRET_NAME", _text, ""),
    # signed one-click links (reclaim.domain.answer_links): the HMAC key's secret and the app's
    # public address that the links point to (the email and Teams channels need both)
    "link_secret_name": ("RECLAIM_LINK_SECRET_NAME", _text, ""),
    "public_url": ("RECLAIM_PUBLIC_URL", _public_url, ""),
    # every removal ends: attempts, claims, circuit breakers, directory timeouts
    "max_attempts": ("RECLAIM_MAX_ATTEMPTS", _positive_int, "5"),
    "claim_lease": ("RECLAIM_CLAIM_LEASE", _duration, "5m"),
    "breaker_backoff": ("RECLAIM_BREAKER_BACKOFF", _duration, "5m"),
    "breaker_max_wait": ("RECLAIM_BREAKER_MAX_WAIT", _duration, "3d"),
    "outage_threshold": ("RECLAIM_OUTAGE_THRESHOLD", _positive_int, "3"),
    "ldap_timeout": ("RECLAIM_LDAP_TIMEOUT", _positive_int, "10"),
    "graph_timeout": ("RECLAIM_GRAPH_TIMEOUT", _positive_int, "30"),
    # the fleet-wide Graph write budget (reclaim.domain.write_budget): Graph's 3,000 per 150 s
    "graph_write_rate": ("RECLAIM_GRAPH_WRITE_RATE", _positive_number, "20"),
    "graph_write_burst": ("RECLAIM_GRAPH_WRITE_BURST", _positive_int, "3000"),
}


@dataclass(frozen=True)
class Settings:
    policies_file: Path
    state_backend: str
    state_db: Path
    kill_switch: bool
    secrets_source: str
    key_vault_url: str
    secret_cache_ttl: timedelta
    key_vault_authority_host: str
    key_vault_client_id: str
    ca_bundle: str
    tenant_id: str
    client_id: str
    graph_client_secret_name: str
    graph_certificate_name: str
    graph_base_url: str
    authority_host: str
    graph_scope: str
    admin_audience: tuple[str, ...]
    platform_auth: bool
    ldap_url: str
    ldap_base_dn: str
    ldap_bind_dn: str
    ldap_password_secret_name: str
    ldap_ca_file: str
    ldap_server_name: str
    ldap_start_tls: bool
    ldap_insecure: bool
    nexthink_base_url: str
    nexthink_token_url: str
    nexthink_client_id: str
    nexthink_client_secret_name: str
    nexthink_answers_query_id: str
    nexthink_executions_query_id: str
    nexthink_sam_account_name_input: str
    nexthink_group_name_input: str
    nexthink_timezone: str
    scheduler_schedule: str
    expiry_schedule: str
    removal_queue: str
    table_prefix: str
    retention: timedelta
    webhook_secret_name: str
    webhook_max_bytes: int
    webhook_tolerance: timedelta
    outbound_webhook_secret_name: str
    digest_webhook_secret_name: str
    mail_sender: str
    teams_webhook_secret_name: str
    link_secret_name: str
    public_url: str
    max_attempts: int
    claim_lease: timedelta
    breaker_backoff: timedelta
    breaker_max_wait: timedelta
    outage_threshold: int
    ldap_timeout: int
    graph_timeout: int
    graph_write_rate: float
    graph_write_burst: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raise SettingsError listing each bad one with its variable name."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for attribute, (variable, parse, default) in SETTINGS.items():
            raw = env.get(variable, "")
            text = raw if raw.strip() else default
            if attribute == "state_db" and not text:
                text = _default_state_db()
            try:
                values[attribute] = parse(text)
            except ValueError as error:
                problems.append(f"{variable}: {error}")
        if values.get("secrets_source") == "keyvault" and not values.get("key_vault_url"):
            needs_vault = [
                SETTINGS[a][0]
                for a in SETTINGS
                if a.endswith("_secret_name") and a != "webhook_secret_name" and values.get(a)
            ]
            if needs_vault:
                problems.append(
                    f"RECLAIM_KEY_VAULT_URL: required to read {', '.join(needs_vault)} "
                    "(or set RECLAIM_SECRETS_SOURCE=env for local runs)"
                )
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    def graph_missing(self) -> list[str]:
        """The variables the Entra ID (Graph) path needs that are not set."""
        missing = [
            variable
            for variable, value in (
                ("RECLAIM_TENANT_ID", self.tenant_id),
                ("RECLAIM_CLIENT_ID", self.client_id),
            )
            if not value
        ]
        if not (self.graph_certificate_name or self.graph_client_secret_name):
            missing.append("RECLAIM_GRAPH_CERTIFICATE_NAME or RECLAIM_GRAPH_CLIENT_SECRET_NAME")
        return missing


def variable_names() -> list[str]:
    """Every environment variable reclaim reads (kept in step with the sample and the templates)."""
    return [variable for variable, _, _ in SETTINGS.values()]


TABLE_SUFFIXES = (
    "Runs",
    "Decisions",
    "Requests",
    "Answers",
    "Ledger",
    "Members",
    "Cursors",
    "Switches",
    "Quarantine",  # rows that did not read back (reclaim.adapters.quarantine)
)


def table_names(prefix: str) -> list[str]:
    """The Table storage tables reclaim uses (names are letters and digits only)."""
    return [f"{prefix}{suffix}" for suffix in TABLE_SUFFIXES]
