"""LdapDirectory against a real Samba Active Directory domain controller (tests.support.samba)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import TYPE_CHECKING

import pytest
from ldap3 import BASE
from ldap3.protocol.formatters.formatters import format_uuid_le

from reclaim.adapters.ldap import LdapDirectory
from reclaim.domain.model import User
from reclaim.domain.selection import DecisionKind
from reclaim.errors import (
    ConfigurationError,
    GroupRefused,
    PermanentError,
    TransientError,
    UserNotFound,
)
from reclaim.ports import AddOutcome, RemovalOutcome
from reclaim.settings import Settings
from tests.fakes.https import test_pki as make_test_pki

if TYPE_CHECKING:  # imported by pytest as a plugin, so that its asserts are rewritten
    from tests.support.samba import SambaDC

pytestmark = pytest.mark.samba

PASSWORD_SECRET = "ldap-bind-password"
BIG_GROUP_SIZE = 1_600  # above AD's 1,500-value range limit and Samba's 1,000-entry page size

_names = count()


class DictSecrets:
    """The Secrets port backed by a dict (Key Vault is tested elsewhere)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str:
        if name not in self.values:
            raise ConfigurationError(f"secret {name} not found")
        return self.values[name]


def unique(prefix: str) -> str:
    """A sAMAccountName no other test uses (the domain lives for the whole session)."""
    return f"{prefix}{next(_names)}x{uuid.uuid4().hex[:4]}"


def make_directory(dc: SambaDC, password: str | None = None, **settings: str) -> LdapDirectory:
    secrets = DictSecrets({PASSWORD_SECRET: dc.admin_password if password is None else password})
    return LdapDirectory.from_settings(Settings.from_env(dc.settings_env(**settings)), secrets)


@pytest.fixture
def directory(samba_dc: SambaDC) -> Iterator[LdapDirectory]:
    adapter = make_directory(samba_dc)
    yield adapter
    adapter.close()


@pytest.fixture
def group_with_members(samba_dc: SambaDC) -> tuple[str, list[str], list[str]]:
    """A fresh group with three member users: (group DN, sAMAccountNames, user DNs)."""
    names = [unique("m") for _ in range(3)]
    dns = samba_dc.create_users(names)
    group = samba_dc.create_group(unique("g"))
    samba_dc.add_members(group, dns)
    return group, names, dns


@pytest.fixture(scope="module")
def big_group(samba_dc: SambaDC) -> tuple[str, set[str]]:
    """A group of 1,600 users, plus a computer and a nested group that must not be listed."""
    ou = samba_dc.ensure_ou(f"OU=big,{samba_dc.test_ou}")
    names = [f"bulk{number:04d}" for number in range(BIG_GROUP_SIZE)]
    group = samba_dc.create_group("big-licence", ou=ou)
    samba_dc.add_members(group, samba_dc.create_users(names, ou=ou))
    nested = samba_dc.create_group("big-nested", ou=ou)
    samba_dc.add_members(nested, [samba_dc.create_user("big-nested-user", ou=ou)])
    samba_dc.add_members(group, [nested, samba_dc.create_computer("bigpc", ou=ou)])
    return group, set(names)


# ---- check_group -------------------------------------------------------------------------------


def test_check_group_by_dn_and_by_sam_account_name(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    name = unique("lic")
    dn = samba_dc.create_group(name)

    by_dn = directory.check_group(dn)
    by_name = directory.check_group(name)

    assert by_dn.id == by_name.id == dn
    assert by_dn.display_name == name
    assert by_dn.member_count is None


@pytest.mark.parametrize(
    "group",
    [
        "CN=no-such-group,OU=reclaim-tests,DC=example,DC=test",
        "no-such-group",
        "*",
        "*)(objectClass=*",
        "CN=Administrator,CN=Users,DC=example,DC=test",  # exists, but a user
        "CN=unbalanced=,=",
    ],
)
def test_check_group_refuses_what_is_not_a_group(directory: LdapDirectory, group: str) -> None:
    with pytest.raises(GroupRefused, match=re.escape(group)):
        directory.check_group(group)


# ---- remove / add ------------------------------------------------------------------------------


def test_remove_then_not_member(
    samba_dc: SambaDC, directory: LdapDirectory, group_with_members: tuple[str, list, list]
) -> None:
    group, names, dns = group_with_members

    first = directory.remove(group, User(sam_account_name=names[0]))
    again = directory.remove(group, User(sam_account_name=names[0]))

    assert first.outcome == RemovalOutcome.REMOVED
    assert again.outcome == RemovalOutcome.NOT_MEMBER
    assert "already deleted" in again.detail
    assert not samba_dc.is_member(group, dns[0])
    assert samba_dc.is_member(group, dns[1]) and samba_dc.is_member(group, dns[2])


def test_remove_by_group_sam_account_name(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    name, user = unique("lic"), unique("u")
    group, user_dn = samba_dc.create_group(name), samba_dc.create_user(user)
    samba_dc.add_members(group, [user_dn])

    assert directory.remove(name, User(sam_account_name=user)).outcome == RemovalOutcome.REMOVED
    assert not samba_dc.is_member(group, user_dn)


def test_remove_of_a_user_who_never_was_a_member(
    samba_dc: SambaDC, directory: LdapDirectory, group_with_members: tuple[str, list, list]
) -> None:
    group, _, _ = group_with_members
    outsider = unique("out")
    samba_dc.create_user(outsider)

    result = directory.remove(group, User(sam_account_name=outsider))

    assert result.outcome == RemovalOutcome.NOT_MEMBER


def test_add_then_already_member(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    group, user = samba_dc.create_group(unique("lic")), unique("u")
    user_dn = samba_dc.create_user(user)

    assert directory.add(group, User(sam_account_name=user)) == AddOutcome.ADDED
    assert samba_dc.is_member(group, user_dn)
    assert directory.add(group, User(sam_account_name=user)) == AddOutcome.ALREADY_MEMBER


def test_restore_after_removal(
    samba_dc: SambaDC, directory: LdapDirectory, group_with_members: tuple[str, list, list]
) -> None:
    group, names, dns = group_with_members
    user = User(sam_account_name=names[1])

    assert directory.remove(group, user).outcome == RemovalOutcome.REMOVED
    assert directory.add(group, user) == AddOutcome.ADDED
    assert samba_dc.is_member(group, dns[1])


def test_unknown_user_is_raised_not_reported(
    directory: LdapDirectory, group_with_members: tuple[str, list, list]
) -> None:
    group, _, _ = group_with_members
    ghost = User(sam_account_name="nobody-here")

    with pytest.raises(UserNotFound, match="nobody-here"):
        directory.remove(group, ghost)
    with pytest.raises(UserNotFound, match="nobody-here"):
        directory.add(group, ghost)


def test_user_without_sam_account_name_is_a_permanent_error(
    directory: LdapDirectory, group_with_members: tuple[str, list, list]
) -> None:
    group, _, _ = group_with_members
    with pytest.raises(PermanentError, match=r"jane@example\.test has no sAMAccountName"):
        directory.remove(group, User(upn="jane@example.test"))


@pytest.mark.parametrize("group", ["CN=gone,OU=reclaim-tests,DC=example,DC=test", "gone-group"])
def test_missing_group_on_change_is_a_configuration_error(
    samba_dc: SambaDC, directory: LdapDirectory, group: str
) -> None:
    user = unique("u")
    samba_dc.create_user(user)

    with pytest.raises(ConfigurationError, match="does not exist"):
        directory.remove(group, User(sam_account_name=user))
    with pytest.raises(ConfigurationError, match="does not exist"):
        directory.add(group, User(sam_account_name=user))


def test_group_deleted_after_it_was_looked_up(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    name, user = unique("lic"), unique("u")
    group, user_dn = samba_dc.create_group(name), samba_dc.create_user(user)
    samba_dc.add_members(group, [user_dn])
    assert directory.add(name, User(sam_account_name=user)) == AddOutcome.ALREADY_MEMBER
    samba_dc.delete(group)  # its DN is cached by name now

    with pytest.raises(ConfigurationError, match="does not exist"):
        directory.remove(name, User(sam_account_name=user))


def test_wrong_base_dn_is_a_configuration_error(samba_dc: SambaDC) -> None:
    adapter = make_directory(samba_dc, RECLAIM_LDAP_BASE_DN="OU=missing,DC=example,DC=test")
    with pytest.raises(ConfigurationError, match="RECLAIM_LDAP_BASE_DN OU=missing"):
        adapter.check_group("any-group")


# ---- filter injection and odd names ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["*)(objectClass=*", "*", "m*", "*)(|(sAMAccountName=*", "\\2a", "x)(cn=*"]
)
def test_filter_injection_cannot_widen_the_user_search(
    samba_dc: SambaDC,
    directory: LdapDirectory,
    group_with_members: tuple[str, list, list],
    name: str,
) -> None:
    group, _, dns = group_with_members

    with pytest.raises(UserNotFound):
        directory.remove(group, User(sam_account_name=name))

    assert all(samba_dc.is_member(group, dn) for dn in dns)


def test_names_with_parentheses_and_backslashes_that_exist_literally(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    user = f"o(brien){next(_names)}"
    user_dn = samba_dc.create_user(user)
    group_name = unique("lic-odd")
    # A CN with parentheses, a backslash and a comma: escaped in the DN, again in the filter.
    group = samba_dc.create_group(group_name, cn=f"Licence (Visio) a\\b, {group_name}")
    samba_dc.add_members(group, [user_dn])

    assert [m.user.sam_account_name for m in directory.members(group)] == [user]
    assert directory.check_group(group).id == group
    assert directory.remove(group, User(sam_account_name=user)).outcome == RemovalOutcome.REMOVED
    assert not samba_dc.is_member(group, user_dn)
    assert directory.add(group_name, User(sam_account_name=user)) == AddOutcome.ADDED
    assert samba_dc.is_member(group, user_dn)
    # AD refuses a backslash in a sAMAccountName, so such a name can only be "not found".
    with pytest.raises(UserNotFound):
        directory.remove(group, User(sam_account_name="o\\brien"))


# ---- members -----------------------------------------------------------------------------------


def test_members_are_users_with_their_identifiers(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    user, other = unique("u"), unique("n")
    user_dn = samba_dc.create_user(
        user, display_name="Jane Doe", mail=f"{user}@mail.example.test", upn=f"{user}@corp.test"
    )
    nested = samba_dc.create_group(unique("nest"))
    samba_dc.add_members(nested, [samba_dc.create_user(other)])
    group = samba_dc.create_group(unique("lic"))
    samba_dc.add_members(group, [user_dn, nested, samba_dc.create_computer(unique("pc"))])

    members = list(directory.members(group))

    assert len(members) == 1  # neither the computer, the nested group, nor its member
    member = members[0]
    samba_dc.admin.search(user_dn, "(objectClass=*)", BASE, attributes=["objectGUID"])
    guid = format_uuid_le(samba_dc.admin.response[0]["raw_attributes"]["objectGUID"][0])
    assert member.user.sam_account_name == user
    assert member.user.upn == f"{user}@corp.test"
    assert member.user.mail == f"{user}@mail.example.test"
    assert member.user.display_name == "Jane Doe"
    assert re.fullmatch(r"S-1-5-21-\d+-\d+-\d+-\d+", member.user.sid)
    assert member.user.object_id == guid.strip("{}")
    assert member.added_at is None


def test_empty_group_has_no_members(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    assert list(directory.members(samba_dc.create_group(unique("empty")))) == []


def test_members_of_a_missing_group_are_refused(directory: LdapDirectory) -> None:
    with pytest.raises(GroupRefused):
        list(directory.members("no-such-group"))


def test_a_group_above_1500_members_is_read_completely(
    big_group: tuple[str, set[str]], directory: LdapDirectory
) -> None:
    group, names = big_group

    listed = [member.user.sam_account_name for member in directory.members(group)]

    assert len(listed) == len(set(listed)) == BIG_GROUP_SIZE
    assert set(listed) == names


def test_small_pages_give_the_same_members(
    samba_dc: SambaDC, big_group: tuple[str, set[str]]
) -> None:
    group, names = big_group
    adapter = LdapDirectory(
        url=samba_dc.url,
        base_dn=samba_dc.base_dn,
        bind_dn=samba_dc.bind_dn,
        secrets=DictSecrets({PASSWORD_SECRET: samba_dc.admin_password}),
        password_secret_name=PASSWORD_SECRET,
        ca_file=samba_dc.ca_file,
        server_name=samba_dc.server_name,
        page_size=300,  # six pages, each read on the same connection
    )

    assert {member.user.sam_account_name for member in adapter.members(group)} == names


# ---- connection: restart, concurrency, TLS, credentials ----------------------------------------


def test_server_restart_in_the_middle_of_a_run(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    names = [unique("r") for _ in range(9)]
    dns = samba_dc.create_users(names)
    group = samba_dc.create_group(unique("lic"))
    samba_dc.add_members(group, dns)

    before = [directory.remove(group, User(sam_account_name=n)) for n in names[:3]]
    samba_dc.stop()
    # The dropped connection is retried once on a fresh one; the server is down: transient.
    with pytest.raises(TransientError, match="cannot reach"):
        directory.remove(group, User(sam_account_name=names[3]))
    samba_dc.start()
    after = [directory.remove(group, User(sam_account_name=n)) for n in names[3:6]]
    samba_dc.restart()  # no call in between: the next one reconnects silently
    last = [directory.remove(group, User(sam_account_name=n)) for n in names[6:]]

    assert {r.outcome for r in before + after + last} == {RemovalOutcome.REMOVED}
    assert not any(samba_dc.is_member(group, dn) for dn in dns)


def test_concurrent_removals_share_one_connection(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    names = [unique("c") for _ in range(24)]
    dns = samba_dc.create_users(names)
    group = samba_dc.create_group(unique("lic"))
    samba_dc.add_members(group, dns)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: directory.remove(group, User(sam_account_name=n)), names))

    assert {r.outcome for r in results} == {RemovalOutcome.REMOVED}
    assert list(directory.members(group)) == []


def test_start_tls_on_389(samba_dc: SambaDC) -> None:
    adapter = make_directory(
        samba_dc, RECLAIM_LDAP_URL=samba_dc.start_tls_url, RECLAIM_LDAP_START_TLS="true"
    )
    group, user = samba_dc.create_group(unique("lic")), unique("u")
    samba_dc.create_user(user)

    assert adapter.add(group, User(sam_account_name=user)) == AddOutcome.ADDED
    assert adapter.remove(group, User(sam_account_name=user)).outcome == RemovalOutcome.REMOVED


@pytest.mark.parametrize("start_tls", [False, True])
def test_wrong_ca_is_rejected(samba_dc: SambaDC, start_tls: bool) -> None:
    other_ca = str(make_test_pki().ca_file)
    url = samba_dc.start_tls_url if start_tls else samba_dc.url
    adapter = make_directory(
        samba_dc,
        RECLAIM_LDAP_URL=url,
        RECLAIM_LDAP_START_TLS=str(start_tls),
        RECLAIM_LDAP_CA_FILE=other_ca,
    )

    with pytest.raises(ConfigurationError) as raised:
        adapter.check_group("Domain Admins")

    assert str(raised.value).startswith(
        f"the certificate of {url} was not trusted with CA file {other_ca}"
    )


def test_certificate_for_another_name_is_rejected(samba_dc: SambaDC) -> None:
    adapter = make_directory(samba_dc, RECLAIM_LDAP_SERVER_NAME="dc9.example.test")

    with pytest.raises(ConfigurationError, match=r"does not name dc9\.example\.test"):
        adapter.check_group("Domain Admins")


def test_wrong_password_gives_a_clear_error(samba_dc: SambaDC) -> None:
    wrong = "Not-The-Password-42"
    adapter = make_directory(samba_dc, password=wrong)

    with pytest.raises(ConfigurationError) as raised:
        adapter.check_group("Domain Admins")

    message = str(raised.value)
    assert f"the bind for {samba_dc.bind_dn} was rejected" in message
    assert PASSWORD_SECRET in message
    assert wrong not in message and samba_dc.admin_password not in message


def test_unreachable_server_is_transient(samba_dc: SambaDC) -> None:
    adapter = make_directory(samba_dc, RECLAIM_LDAP_URL="ldaps://127.0.0.1:1")
    with pytest.raises(
        TransientError, match=r"cannot reach the LDAP server ldaps://127\.0\.0\.1:1"
    ):
        adapter.check_group("Domain Admins")


def test_insecure_setting_logs_a_warning_at_every_start(
    samba_dc: SambaDC, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reclaim.adapters.ldap")
    other_ca = str(make_test_pki().ca_file)
    for _ in range(2):
        adapter = make_directory(
            samba_dc, RECLAIM_LDAP_INSECURE="true", RECLAIM_LDAP_CA_FILE=other_ca
        )
        # Not validated: a certificate from an untrusted CA is accepted.
        assert adapter.check_group("Domain Admins").display_name == "Domain Admins"
        adapter.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "not certificate-validated" in warnings[0].getMessage()


def test_insecure_plain_ldap_is_refused_by_a_dc_that_requires_tls(
    samba_dc: SambaDC, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reclaim.adapters.ldap")
    adapter = make_directory(
        samba_dc, RECLAIM_LDAP_URL=samba_dc.start_tls_url, RECLAIM_LDAP_INSECURE="true"
    )

    with pytest.raises(ConfigurationError, match="strongerAuthRequired"):
        adapter.check_group("Domain Admins")
    assert "unencrypted" in caplog.text


# ---- settings ----------------------------------------------------------------------------------


def test_missing_settings_are_listed_together() -> None:
    settings = Settings.from_env({"RECLAIM_SECRETS_SOURCE": "env"})
    with pytest.raises(ConfigurationError) as raised:
        LdapDirectory.from_settings(settings, DictSecrets({}))
    for variable in (
        "RECLAIM_LDAP_URL",
        "RECLAIM_LDAP_BASE_DN",
        "RECLAIM_LDAP_BIND_DN",
        "RECLAIM_LDAP_PASSWORD_SECRET_NAME",
    ):
        assert f"{variable} is not set" in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"RECLAIM_LDAP_URL": "ldap://127.0.0.1:389"}, "is unencrypted"),
        (
            {"RECLAIM_LDAP_START_TLS": "true"},
            "RECLAIM_LDAP_START_TLS=true needs an ldap:// RECLAIM_LDAP_URL",
        ),
        ({"RECLAIM_LDAP_CA_FILE": "/nonexistent/ca.pem"}, "is not a readable file"),
    ],
)
def test_unsafe_or_broken_settings_are_refused(
    samba_dc: SambaDC, overrides: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        make_directory(samba_dc, **overrides)


# ---- nesting and join dates ---------------------------------------------------------------------


def plan_on_ad(directory: LdapDirectory, tmp_path, group: str, names: list[str], **policy):
    """A first-run plan of `group` over the real adapter, every member with a little usage."""
    import itertools

    from reclaim import usecases
    from reclaim.adapters.sqlite import SqliteStore
    from reclaim.domain.model import UsageRow
    from tests.conftest import NOW, make_policy
    from tests.support.memory import MemoryAdapters, MemoryQueue, MemoryUsage

    class Adapters(MemoryAdapters):
        def directory(self, policy):  # type: ignore[no-untyped-def, override]
            return directory

    chosen = make_policy(
        directory={"kind": "ad", "group": group, "file": None},
        usage={"match_on": "sam_account_name"},
        **policy,
    )
    rows = [UsageRow(name.lower(), 1.0) for name in names]
    ids = (f"id-{n:03d}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        Adapters(None, MemoryUsage(rows, NOW)),  # type: ignore[arg-type]
        {chosen.name: chosen},
        new_id=lambda: next(ids),
    )
    outcome = usecases.run_policy(ctx, chosen, NOW, read_only=True)
    assert outcome.halt is None, outcome.halt
    return {d.member.user.sam_account_name: d for d in outcome.decisions}


def test_members_of_a_group_nested_in_an_exclusion_group_are_excluded(
    samba_dc: SambaDC, directory: LdapDirectory, tmp_path
) -> None:
    """The defect: exclude.groups [XAdmins], XAdmins holds XTier0 = {x0, x1}; both were
    CANDIDATE. With the in-chain rule they are EXCLUDED (the DN has filter characters)."""
    x0, x1, y = unique("x0"), unique("x1"), unique("y")
    dns = dict(zip((x0, x1, y), samba_dc.create_users([x0, x1, y]), strict=True))
    group = samba_dc.create_group(unique("lic"))
    samba_dc.add_members(group, dns.values())
    admins = unique("XAdmins")
    admins_dn = samba_dc.create_group(admins)
    tier0 = samba_dc.create_group(unique("XTier0"), cn=f"XTier0 (*){unique('')}")
    samba_dc.add_members(tier0, [dns[x0], dns[x1]])
    samba_dc.add_members(admins_dn, [tier0])
    decisions = plan_on_ad(directory, tmp_path, group, [x0, x1, y], exclude={"groups": [admins]})
    assert decisions[x0].kind is DecisionKind.EXCLUDED
    assert decisions[x0].reason == f"excluded by policy (group {admins})"
    assert decisions[x1].kind is DecisionKind.EXCLUDED
    assert decisions[y].kind is DecisionKind.CANDIDATE
    assert {u.sam_account_name for u in directory.transitive_users(admins)} == {x0, x1}


def test_members_through_a_group_nested_in_the_licensing_group_are_nested(
    samba_dc: SambaDC, directory: LdapDirectory, tmp_path
) -> None:
    direct, inner, deeper = unique("d"), unique("n"), unique("nn")
    dns = dict(
        zip((direct, inner, deeper), samba_dc.create_users([direct, inner, deeper]), strict=True)
    )
    group = samba_dc.create_group(unique("lic"))
    team_name = unique("team")
    team = samba_dc.create_group(team_name)
    sub = samba_dc.create_group(unique("sub"))
    samba_dc.add_members(group, [dns[direct], team])
    samba_dc.add_members(team, [dns[inner], sub])
    samba_dc.add_members(sub, [dns[deeper]])
    decisions = plan_on_ad(directory, tmp_path, group, [direct, inner, deeper])
    assert decisions[direct].kind is DecisionKind.CANDIDATE
    for name in (inner, deeper):
        assert decisions[name].kind is DecisionKind.NESTED
        assert decisions[name].reason.startswith(f"member through nested group {team_name}:")
    assert [g.id for g in directory.member_groups(group)] == [team]


def test_samba_gives_no_join_dates_so_members_follow_the_baseline(
    samba_dc: SambaDC, directory: LdapDirectory, group_with_members, tmp_path
) -> None:
    """Samba answers msDS-ReplValueMetaData with no values: the join date is unknown."""
    group, names, _ = group_with_members
    assert all(m.added_at is None for m in directory.members(group))
    decisions = plan_on_ad(directory, tmp_path, group, names)
    assert all(d.kind is DecisionKind.CANDIDATE for d in decisions.values())
    assert all(d.evidence.joined == "join date unknown (baseline)" for d in decisions.values())
    cautious = plan_on_ad(directory, tmp_path / "new", group, names, first_run="new")
    assert all(d.kind is DecisionKind.NEW for d in cautious.values())
