"""Combinations a run would only discover by failing: refused by validation, with their paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from reclaim.domain.durations import format_duration
from reclaim.domain.policy.model import (
    RECENCY_SOURCES,
    SIGN_IN_LOG_RETENTION,
    SUPPLIED_QUERY_PARAMETERS,
    DirectoryKind,
    MatchOn,
    Policy,
    UsageSourceKind,
    UsageSpec,
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SIGNIN_KEYS = (MatchOn.UPN, MatchOn.MAIL, MatchOn.OBJECT_ID)

# Settings that only one kind reads: elsewhere they would be silently ignored.
_USAGE_KEYS_OF = {
    "file": {UsageSourceKind.CSV},
    "query_id": {UsageSourceKind.NEXTHINK},
    "parameters": {UsageSourceKind.NEXTHINK},
    "query_parameters": {UsageSourceKind.NEXTHINK},
    "app_id": {UsageSourceKind.ENTRA_SIGNINS},
    "user_column": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "usage_column": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "answer_column": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "answered_at_column": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "timestamp_column": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "timezone": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK},
    "min_coverage": {UsageSourceKind.CSV, UsageSourceKind.NEXTHINK, *RECENCY_SOURCES},
    "log_retention": {UsageSourceKind.ENTRA_SIGNINS},
    "non_interactive_beta": {UsageSourceKind.ENTRA_SIGNINS},
    "inactive_for": {UsageSourceKind.ENTRA_ACTIVITY, UsageSourceKind.M365_REPORTS},
    "product": {UsageSourceKind.M365_REPORTS},
}
# The longest period a Microsoft 365 usage report covers (D7, D30, D90, D180).
M365_LONGEST_PERIOD = timedelta(days=180)
# entra-activity judges the time since the last sign-in: an amount over a look-back means nothing.
_AMOUNT_KEYS = ("threshold", "unit", "lookback")
_DIRECTORY_KEYS_OF = {
    "file": {DirectoryKind.CSV},
    "devices": {DirectoryKind.NEXTHINK_REMOTE_ACTION},
    "remote_action_id": {DirectoryKind.NEXTHINK_REMOTE_ACTION},
    "sku_id": {DirectoryKind.ENTRA_LICENCE},
}


def unworkable(policy: Policy, data: Any, path: str) -> list[str]:
    """Problems of a policy that reads well field by field but cannot work as a whole."""
    raw = data if isinstance(data, Mapping) else {}
    problems: list[str] = []

    def problem(at: str, message: str) -> None:
        problems.append(f"{path}.{at}: {message}")

    if policy.enforcing and policy.directory.kind is DirectoryKind.CSV:
        problem(
            "mode",
            "enforce needs a directory that can remove members; directory.kind csv is a "
            "read-only export (use entra, ad or nexthink-remote-action, or mode: dry-run)",
        )
    if policy.enforcing and "ask_permission" not in raw:
        problem(
            "ask_permission",
            "mode enforce needs it stated: true asks each candidate first, false removes "
            "without asking",
        )
    usage = policy.usage
    raw_usage = raw.get("usage")
    raw_usage = raw_usage if isinstance(raw_usage, Mapping) else {}
    if usage.retention is not None and usage.retention > SIGN_IN_LOG_RETENTION:
        problem(
            "usage.log_retention",
            f"{format_duration(usage.retention)} is longer than Entra ID keeps sign-ins "
            f"({format_duration(SIGN_IN_LOG_RETENTION)} with Entra ID P1/P2, 7d on Free)",
        )
    elif usage.retention is not None and usage.lookback > usage.retention:
        problem(
            "usage.lookback",
            f"{format_duration(usage.lookback)} is longer than the {usage.source.value} log "
            f"keeps ({format_duration(usage.retention)}, usage.log_retention): the older days "
            "would read as no use. Shorten it, or export the log to a file and use source csv",
        )
    if usage.source in RECENCY_SOURCES:
        for key in _AMOUNT_KEYS:
            if raw_usage.get(key) is not None:
                problem(
                    f"usage.{key}",
                    f"source {usage.source.value} judges the time since each member's last "
                    "sign-in or activity: set usage.inactive_for (e.g. 90d) instead of a usage "
                    "threshold, unit or lookback, and remove this key",
                )
    if usage.source is UsageSourceKind.M365_REPORTS:
        if usage.match_on is not MatchOn.UPN:
            problem(
                "usage.match_on",
                f"the Microsoft 365 usage reports name users by upn only, not {usage.match_on.value}",
            )
        if usage.inactive_for is not None and usage.inactive_for > M365_LONGEST_PERIOD:
            problem(
                "usage.inactive_for",
                f"{format_duration(usage.inactive_for)} is longer than a Microsoft 365 usage "
                "report covers (180d, period D180)",
            )
    if usage.source is UsageSourceKind.ENTRA_ACTIVITY and usage.match_on not in _SIGNIN_KEYS:
        problem(
            "usage.match_on",
            f"entra-activity names users by upn, mail or object_id, not {usage.match_on.value}",
        )
    if usage.source is UsageSourceKind.ENTRA_SIGNINS:
        if usage.match_on not in _SIGNIN_KEYS:
            problem(
                "usage.match_on",
                "the sign-in log names users by upn or object_id (mail matches the UPN), "
                f"not {usage.match_on.value}",
            )
        if usage.app_id and not _GUID.match(usage.app_id):
            problem(
                "usage.app_id", f"expected the application's appId (a GUID), got {usage.app_id!r}"
            )
    if usage.source is UsageSourceKind.NEXTHINK:
        problems += [f"{path}.{p}" for p in _query_parameter_problems(usage)]
    problems += _unused(raw.get("usage"), "source", usage.source, _USAGE_KEYS_OF, f"{path}.usage")
    problems += _unused(
        raw.get("directory"), "kind", policy.directory.kind, _DIRECTORY_KEYS_OF, f"{path}.directory"
    )
    kind = policy.directory.kind
    if kind is DirectoryKind.ENTRA_LICENCE:
        if policy.directory.sku_id and not _GUID.match(policy.directory.sku_id):
            problem(
                "directory.sku_id",
                f"expected the SKU's skuId (a GUID), got {policy.directory.sku_id!r}",
            )
        for key in ("sku_id", "entra_sku_id"):
            if getattr(policy.licence, key):
                problem(f"licence.{key}", "entra-licence names its SKU in directory.sku_id only")
    elif policy.licence.sku_id and kind is not DirectoryKind.ENTRA:
        problem(
            "licence.sku_id",
            f"is the SKU of an Entra group; directory.kind {policy.directory.kind.value} does not "
            "read it (for users synced to Entra ID, use licence.entra_sku_id)",
        )
    return problems


def _query_parameter_problems(usage: UsageSpec) -> list[str]:
    """Only the parameters the saved query declares are sent, each with a value."""
    declared = set(usage.query_parameters)
    problems = [
        f"usage.parameters.{name}: the saved query does not declare it (usage.query_parameters "
        f"lists {', '.join(usage.query_parameters) or 'none'}); remove it or add it there"
        for name in usage.parameters
        if name not in declared
    ]
    problems += [
        f"usage.query_parameters: {name} needs a value in usage.parameters (reclaim fills "
        f"only {', '.join(SUPPLIED_QUERY_PARAMETERS)})"
        for name in usage.query_parameters
        if name not in usage.parameters and name not in SUPPLIED_QUERY_PARAMETERS
    ]
    return problems


def _unused(
    data: Any, kind_key: str, kind: Any, used_by: Mapping[str, set[Any]], path: str
) -> list[str]:
    if not isinstance(data, Mapping):
        return []
    return [
        f"{path}.{key}: {kind_key} {kind.value} does not read it (remove it)"
        for key in data
        if key in used_by and kind not in used_by[key] and data[key] is not None
    ]
