"""Builds the adapters a policy names from the settings; SDK-heavy modules are imported on use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reclaim.domain.breaker import BreakerRules
from reclaim.domain.policy import Channel, DirectoryKind, Policy, UsageSourceKind
from reclaim.errors import ConfigurationError
from reclaim.ports import (
    Campaign,
    Directory,
    Licences,
    Managers,
    Notifier,
    Secrets,
    StateStore,
    UsageSource,
)
from reclaim.settings import Settings
from reclaim.usecases.context import RemovalLimits

T = TypeVar("T")


class Wiring:
    """reclaim.usecases.Adapters: one adapter per system and policy, built once and shared."""

    def __init__(self, settings: Settings, base_dir: Path, secrets: Secrets | None = None) -> None:
        self.settings = settings
        self.base_dir = base_dir  # CSV paths in a policy are relative to its file
        self._secrets = secrets
        self._built: dict[tuple[str, ...], Any] = {}
        self._lock = threading.RLock()  # building one adapter may build another (secrets)

    def _once(self, key: tuple[str, ...], build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def secrets(self) -> Secrets:
        if self._secrets is None:
            from reclaim.adapters.keyvault import secrets_from_settings

            self._secrets = self._once(("secrets",), lambda: secrets_from_settings(self.settings))
        return self._secrets

    def _path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.base_dir / path

    def _graph(self) -> Any:
        from reclaim.adapters.graph.members import EntraDirectory

        return self._once(
            ("graph",), lambda: EntraDirectory.from_settings(self.settings, self.secrets())
        )

    def _ldap(self) -> Any:
        from reclaim.adapters.ldap import LdapDirectory

        return self._once(
            ("ldap",), lambda: LdapDirectory.from_settings(self.settings, self.secrets())
        )

    def _nexthink(self) -> Any:
        """One Nexthink client (one token, one connection pool) for usage, campaigns and actions."""
        from reclaim.adapters.nexthink.client import NexthinkClient

        return self._once(
            ("nexthink",), lambda: NexthinkClient.from_settings(self.settings, self.secrets())
        )

    def directory(self, policy: Policy) -> Directory:
        spec = policy.directory
        match spec.kind:
            case DirectoryKind.CSV:
                from reclaim.adapters.files import CsvDirectory

                return self._once(
                    ("csv-members", spec.file), lambda: CsvDirectory(self._path(spec.file))
                )
            case DirectoryKind.ENTRA:
                return self._graph()
            case DirectoryKind.ENTRA_LICENCE:
                from reclaim.adapters.graph.assignments import EntraLicenceDirectory

                return self._once(
                    ("entra-licence",),
                    lambda: EntraLicenceDirectory.from_settings(self.settings, self.secrets()),
                )
            case DirectoryKind.AD:
                return self._ldap()
            case DirectoryKind.NEXTHINK_REMOTE_ACTION:
                from reclaim.adapters.nexthink.remote_action import NexthinkRemoteActionDirectory

                inner = self._ldap() if self.settings.ldap_url else None
                return self._once(
                    ("nexthink-ra", policy.name),
                    lambda: NexthinkRemoteActionDirectory(
                        self._nexthink(),
                        spec,
                        self.settings.nexthink_executions_query_id,
                        inner,
                        sam_account_name_input=self.settings.nexthink_sam_account_name_input,
                        group_name_input=self.settings.nexthink_group_name_input,
                    ),
                )
        raise ConfigurationError(f"policy {policy.name}: unknown directory kind {spec.kind}")

    def usage_source(self, policy: Policy) -> UsageSource:
        spec = policy.usage
        match spec.source:
            case UsageSourceKind.CSV:
                from reclaim.adapters.files import CsvUsage

                return CsvUsage(self._path(spec.file))
            case UsageSourceKind.NEXTHINK:
                from reclaim.adapters.nexthink.usage import NexthinkUsage

                return self._once(
                    ("nexthink-usage",),
                    lambda: NexthinkUsage(self._nexthink()),
                )
            case UsageSourceKind.ENTRA_SIGNINS:
                from reclaim.adapters.graph.signins import EntraSignInsUsage

                return self._once(
                    ("signins",),
                    lambda: EntraSignInsUsage.from_settings(self.settings, self.secrets()),
                )
            case UsageSourceKind.ENTRA_ACTIVITY:
                from reclaim.adapters.graph.activity import EntraActivityUsage

                return self._once(
                    ("signin-activity",),
                    lambda: EntraActivityUsage.from_settings(self.settings, self.secrets()),
                )
            case UsageSourceKind.M365_REPORTS:
                from reclaim.adapters.graph.reports import M365ReportUsage

                return self._once(
                    ("m365-reports",),
                    lambda: M365ReportUsage.from_settings(self.settings, self.secrets()),
                )
        raise ConfigurationError(f"policy {policy.name}: unknown usage source {spec.source}")

    def licences(self, policy: Policy) -> Licences:
        """Entra ID, for every policy that names an Entra SKU (Policy.seat_sku)."""
        from reclaim.adapters.graph.client import shared_client
        from reclaim.adapters.graph.licences import GraphLicences

        return self._once(
            ("licences",), lambda: GraphLicences(shared_client(self.settings, self.secrets()))
        )

    def managers(self, policy: Policy) -> Managers:
        """The users' managers (escalation.approver: manager), from the policy's directory."""
        match policy.directory.kind:
            case DirectoryKind.ENTRA | DirectoryKind.ENTRA_LICENCE:
                from reclaim.adapters.graph.client import shared_client
                from reclaim.adapters.graph.managers import GraphManagers

                return self._once(
                    ("graph-managers",),
                    lambda: GraphManagers(shared_client(self.settings, self.secrets())),
                )
            case DirectoryKind.AD | DirectoryKind.NEXTHINK_REMOTE_ACTION:
                if not self.settings.ldap_url:
                    raise ConfigurationError(
                        f"policy {policy.name}: managers are read from AD: set RECLAIM_LDAP_URL"
                    )
                return self._ldap()  # LdapDirectory reads `manager` too
        raise ConfigurationError(
            f"policy {policy.name}: directory kind {policy.directory.kind} has no managers"
        )

    def campaign(self, policy: Policy) -> Campaign:
        match policy.campaign.channel:
            case Channel.NEXTHINK:
                from reclaim.adapters.nexthink.campaigns import NexthinkCampaign

                return self._once(
                    ("nexthink-campaign",),
                    lambda: NexthinkCampaign(
                        self._nexthink(), self.settings.nexthink_answers_query_id
                    ),
                )
            case Channel.WEBHOOK:
                from reclaim.adapters.webhook_channel import WebhookCampaign

                return self._once(
                    ("webhook-campaign",),
                    lambda: WebhookCampaign.from_settings(self.settings, self.secrets()),
                )
            case Channel.EMAIL:
                from reclaim.adapters.graph.mail import GraphMailChannel

                return self._once(
                    ("email-campaign",),
                    lambda: GraphMailChannel.from_settings(self.settings, self.secrets()),
                )
            case Channel.TEAMS:
                from reclaim.adapters.teams_channel import TeamsWorkflowChannel

                return self._once(
                    ("teams-campaign",),
                    lambda: TeamsWorkflowChannel.from_settings(self.settings, self.secrets()),
                )
        raise ConfigurationError(
            f"policy {policy.name}: ask_permission needs campaign.channel nexthink, webhook, "
            "email or teams"
        )


def build_notifier(settings: Settings, wiring: Wiring) -> Notifier | None:
    """The admin digest, when RECLAIM_DIGEST_WEBHOOK_SECRET_NAME names its webhook URL."""
    if not settings.digest_webhook_secret_name:
        return None
    from reclaim.adapters.digest import IncomingWebhookDigest

    return IncomingWebhookDigest.from_settings(settings, wiring.secrets())


def removal_limits(settings: Settings) -> RemovalLimits:
    return RemovalLimits(
        max_attempts=settings.max_attempts,
        claim_lease=settings.claim_lease,
        breaker=BreakerRules(
            backoff=settings.breaker_backoff,
            max_wait=settings.breaker_max_wait,
            outage_threshold=settings.outage_threshold,
        ),
    )


def build_store(settings: Settings) -> StateStore:
    if settings.state_backend == "tables":
        from reclaim.adapters.tables import TableStore

        return TableStore.from_settings(settings)
    from reclaim.adapters.sqlite import SqliteStore

    return SqliteStore(settings.state_db)
