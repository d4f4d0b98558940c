"""What every command but validate and host needs: the settings, the policies and the use-case context."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reclaim import usecases
from reclaim.cli.parser import UsageError
from reclaim.domain.policy import DirectoryKind, Policy
from reclaim.errors import ConfigurationError
from reclaim.policy_file import load_policies
from reclaim.settings import Settings


def _check_graph_settings(settings: Settings, policies: Sequence[Policy]) -> None:
    """An AD or remote-action policy naming licence.entra_sku_id has its seats verified in Entra
    ID: the Graph settings are then required; name each missing one."""
    needing = [
        p.name
        for p in policies
        if p.directory.kind not in (DirectoryKind.ENTRA, DirectoryKind.ENTRA_LICENCE) and p.seat_sku
    ]
    missing = settings.graph_missing() if needing else []
    if missing:
        raise ConfigurationError(
            f"policy(ies) {', '.join(needing)} verify seats in Entra ID (licence.entra_sku_id): "
            f"set {', '.join(missing)}"
        )


@dataclass
class _App:
    settings: Settings
    policies: dict[str, Policy]
    ctx: usecases.Context


def _app(args: argparse.Namespace, env: dict[str, str] | None) -> _App:
    from reclaim.adapters.sqlite import SqliteStore
    from reclaim.adapters.sqlite.removal_queue import SqliteQueue
    from reclaim.ports import StateStore
    from reclaim.wiring import Wiring, build_notifier, build_store, removal_limits

    settings = Settings.from_env(env)
    path = args.policies or settings.policies_file
    # The report reads the store alone; it needs no policies file unless one is named.
    optional = (
        args.command in ("report", "kill-switch") and args.policies is None and not path.exists()
    )
    policies = {} if optional else {p.name: p for p in load_policies(path)}
    if (
        args.command in ("plan", "simulate")
        and settings.state_backend == "sqlite"
        and not settings.state_db.exists()
    ):
        # Nothing recorded yet, and a plan (or a simulation) writes nothing: not even a file.
        store: StateStore = SqliteStore(":memory:")
    else:
        store = build_store(settings)
    if isinstance(store, SqliteStore):
        queue: Any = SqliteQueue(store, lease=settings.claim_lease)
    else:
        from reclaim.adapters.queues import StorageQueue

        queue = StorageQueue.from_settings(settings)
    wiring = Wiring(settings, path.parent)
    ctx = usecases.Context(
        store,
        queue,
        wiring,
        policies,
        forced_kill_switch=settings.kill_switch,
        notifier=build_notifier(settings, wiring),
        limits=removal_limits(settings),
        retention=settings.retention,
    )
    return _App(settings, policies, ctx)


def _chosen(app: _App, name: str | None) -> list[Policy]:
    if name is None:
        return list(app.policies.values())
    if name not in app.policies:
        known = ", ".join(sorted(app.policies))
        raise UsageError(f"no policy named {name!r}; the file has: {known}")
    return [app.policies[name]]


# ---- output ------------------------------------------------------------------------------------
