"""LdapDirectory.manager against a real Samba AD DC: the `manager` attribute's DN read back as
the manager's entry; no manager, or a manager deleted since, is none; the user's name is escaped
in the filter, so a name full of filter syntax finds only an account literally so named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from reclaim.adapters.ldap import LdapDirectory
from reclaim.domain.model import User
from reclaim.errors import UserNotFound
from tests.adapters.test_ldap import make_directory, unique

if TYPE_CHECKING:  # imported by pytest as a plugin
    from tests.support.samba import SambaDC

pytestmark = pytest.mark.samba


@pytest.fixture
def directory(samba_dc: SambaDC) -> Iterator[LdapDirectory]:
    adapter = make_directory(samba_dc)
    yield adapter
    adapter.close()


def test_the_manager_attribute_names_who_decides(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    boss_name, name = unique("boss"), unique("ada(x)")
    boss = samba_dc.create_user(boss_name, display_name="Grace Hopper", mail="grace@c.test")
    ada = samba_dc.create_user(name)
    samba_dc.set_manager(ada, boss)

    found = directory.manager(User(sam_account_name=name))

    assert found is not None
    assert (found.sam_account_name, found.mail, found.display_name) == (
        boss_name,
        "grace@c.test",
        "Grace Hopper",
    )
    assert found.upn == f"{boss_name}@{samba_dc.realm.lower()}" and found.sid and found.object_id


def test_no_manager_or_a_deleted_one_is_none(samba_dc: SambaDC, directory: LdapDirectory) -> None:
    name, boss_name = unique("bob"), unique("boss")
    bob = samba_dc.create_user(name)
    assert directory.manager(User(sam_account_name=name)) is None
    boss = samba_dc.create_user(boss_name)
    samba_dc.set_manager(bob, boss)
    assert directory.manager(User(sam_account_name=name)) is not None
    samba_dc.delete(boss)  # AD drops the link with the manager
    assert directory.manager(User(sam_account_name=name)) is None
    assert directory.manager(User(upn="bob@c.test")) is None  # no sAMAccountName to look up


def test_filter_syntax_in_a_name_matches_nobody(
    samba_dc: SambaDC, directory: LdapDirectory
) -> None:
    boss = samba_dc.create_user(unique("boss"))
    samba_dc.set_manager(samba_dc.create_user(unique("cy")), boss)
    for name in ("*", "*)(sAMAccountName=*", "cy*"):
        with pytest.raises(UserNotFound):
            directory.manager(User(sam_account_name=name))
