"""Who holds the licence how: exclusion groups and nested groups, matched by any identifier."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from reclaim.domain.model import Member, User, normalise_key


def _keys(user: User) -> list[str]:
    return [normalise_key(v) for v in user.identifiers().values() if v]


def with_groups(
    members: Sequence[Member], groups: Iterable[tuple[str, Iterable[User]]]
) -> list[Member]:
    """Each member with the names of the `groups` (name, users at any depth) that hold them."""
    holders: dict[str, set[str]] = {}
    for name, users in groups:
        for user in users:
            for key in _keys(user):
                holders.setdefault(key, set()).add(name)
    if not holders:
        return list(members)
    return [
        replace(m, groups=m.groups.union(*(holders.get(k, set()) for k in _keys(m.user))))
        for m in members
    ]


def through_nested(
    members: Sequence[Member], nested: Iterable[tuple[str, Iterable[User]]]
) -> list[Member]:
    """Users who hold the licence only through a nested group (name, users at any depth), once
    each, named by the first such group: a removal from the licensing group cannot reach them."""
    direct = {key for m in members for key in _keys(m.user)}
    seen: set[str] = set()
    found: list[Member] = []
    for name, users in nested:
        for user in users:
            keys = _keys(user)
            if not keys or any(k in direct or k in seen for k in keys):
                continue
            seen.update(keys)
            found.append(Member(user, via_group=name))
    return found
