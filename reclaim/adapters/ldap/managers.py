"""Who manages a user in Active Directory: her `manager` attribute, a DN, read back as an entry.

The user is found by sAMAccountName (escaped in the filter, as every lookup of this package); her
`manager` DN is then read with a base search on that DN (a DN is a search base, never pasted
into a filter). No `manager`, or a DN that no longer exists, means no manager: the request goes
to escalation.fallback. Reading `manager` needs only the read access the AD path already has.
"""

from __future__ import annotations

from collections.abc import Callable

from ldap3 import BASE, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from reclaim.adapters.ldap.results import (
    MEMBER_ATTRIBUTES,
    NO_SUCH_OBJECT,
    USER_FILTER,
    _entries,
    _user,
)
from reclaim.domain.model import User
from reclaim.errors import UserNotFound

MANAGER = "manager"
# The manager's entry: a user, or a contact (which has a mail but no sAMAccountName).
MANAGER_FILTER = "(|(objectClass=user)(objectClass=contact))"


def read_manager(
    conn: Connection,
    base_dn: str,
    user: User,
    check: Callable[[Connection, str], None],
) -> User | None:
    """The manager of `user`, None when she has none. `check` raises what a failed result means
    (LdapClient._check)."""
    name = user.sam_account_name
    if not name:
        return None  # not an AD account reclaim can look up: the fallback approvers decide
    search_filter = f"(&{USER_FILTER}(sAMAccountName={escape_filter_chars(name)}))"
    conn.search(base_dn, search_filter, SUBTREE, attributes=[MANAGER], size_limit=1)
    check(conn, f"reading the manager of {name}")
    found = _entries(conn)
    if not found:
        raise UserNotFound(f"no user with sAMAccountName {name!r} under {base_dn}")
    values = found[0]["raw_attributes"].get(MANAGER) or []
    if not values:
        return None
    manager_dn = values[0].decode("utf-8")
    conn.search(manager_dn, MANAGER_FILTER, BASE, attributes=MEMBER_ATTRIBUTES)
    if conn.result["result"] == NO_SUCH_OBJECT:
        return None  # the manager's account was deleted: nobody to ask there
    check(conn, f"reading the manager {manager_dn} of {name}")
    entries = _entries(conn)
    return _user(entries[0]) if entries else None
