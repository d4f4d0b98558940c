"""Leavers in Active Directory, on the Samba DC: the ACCOUNTDISABLE bit of userAccountControl,
and accountExpires as the leave date. Samba creates users disabled; the fixture enables them
unless a test asks otherwise, so only the accounts a test disables count as leavers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reclaim.adapters.ldap import LdapDirectory
from reclaim.adapters.ldap.members import account_from
from reclaim.domain.selection import DecisionKind
from tests.adapters.test_ldap import directory, plan_on_ad, unique
from tests.conftest import NOW
from tests.support.samba import SambaDC

__all__ = ["directory"]  # the fixture, imported for pytest

EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def _filetime(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1) * 10


def test_disabled_and_expired_accounts_are_leavers_and_enabled_ones_are_not(
    samba_dc: SambaDC, directory: LdapDirectory, tmp_path
) -> None:
    on, off, created_off, gone, going = (unique(p) for p in ("on", "off", "raw", "gone", "going"))
    dns = {name: samba_dc.create_user(name) for name in (on, off, gone, going)}
    dns[created_off] = samba_dc.create_user(created_off, enabled=False)  # as Samba creates them
    samba_dc.set_account(dns[off], enabled=False)
    samba_dc.set_account(dns[gone], expires=_filetime(NOW - timedelta(days=5)))
    samba_dc.set_account(dns[going], expires=_filetime(NOW + timedelta(days=30)))
    group = samba_dc.create_group(unique("lv"))
    samba_dc.add_members(group, dns.values())

    accounts = {m.user.sam_account_name: m.account for m in directory.members(group)}
    assert accounts[on].enabled is True and accounts[on].disabled(NOW) == ""
    assert accounts[off].disabled(NOW).startswith("account disabled (AD userAccountControl 0x")
    assert "ACCOUNTDISABLE" in accounts[created_off].disabled(NOW)
    assert accounts[gone].left_at is not None
    assert abs(accounts[gone].left_at - (NOW - timedelta(days=5))) < timedelta(seconds=1)
    assert accounts[going].disabled(NOW) == ""

    names = list(dns)
    decisions = plan_on_ad(directory, tmp_path, group, names, disabled_accounts="reclaim")
    kinds = {name: d.kind for name, d in decisions.items()}
    assert kinds[off] is kinds[created_off] is kinds[gone] is DecisionKind.DISABLED
    assert kinds[on] is kinds[going] is DecisionKind.CANDIDATE  # a little usage, under 5m
    assert all(decisions[n].without_asking for n in (off, created_off, gone))
    assert decisions[gone].reason.startswith(
        f"left on {NOW - timedelta(days=5):%Y-%m-%d} (AD accountExpires)"
    )


def test_an_unreadable_user_account_control_is_unknown_not_enabled() -> None:
    account = account_from({"sAMAccountName": [b"x"]})
    assert account.enabled is None and account.disabled(NOW) == ""
    assert "userAccountControl not returned" in account.unread
    never = account_from({"userAccountControl": [b"512"], "accountExpires": [b"0"]})
    assert never.enabled is True and never.left_at is None
    assert account_from({"accountExpires": [b"9223372036854775807"]}).left_at is None
