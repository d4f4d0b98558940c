"""The policy key `escalation`: a second pair of eyes (the user's manager) before a keep or a removal.

    escalation:
      approver: manager            # the user's manager (Graph /manager, AD `manager`); or fallback
      fallback: [licences@contoso.com]  # who decides for users without a manager (required)
      when: [keep, no_response]    # keep | no | no_response | always (= no and no_response)
      respond_within: 3d           # the approver's own deadline, from the escalation
      on_no_response: keep         # what the approver's silence does: keep | reclaim

Read by reading.py (`read_escalation`); the checks that need the whole policy are here too, so
reading.py grows by a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from reclaim.domain.durations import format_duration
from reclaim.domain.policy.fields import _choice, _kind, _positive_duration, _Reader, _texts
from reclaim.domain.policy.model import CampaignSpec, Channel, DirectoryKind, OnNoResponse


class ApproverKind(StrEnum):
    MANAGER = "manager"  # the user's manager, the fallback approvers when she has none
    FALLBACK = "fallback"  # always the fallback approvers (no directory lookup)


class EscalateOn(StrEnum):
    """What sends a request to the approver instead of ending it."""

    KEEP = "keep"  # the user answered "yes, I still need it"
    NO = "no"  # the user answered "take it back"
    NO_RESPONSE = "no_response"  # the user stayed silent past the deadline


ALWAYS = "always"  # in `when`: before every removal of an asked user (a "no" and silence)


@dataclass(frozen=True)
class Escalation:
    approver: ApproverKind = ApproverKind.MANAGER
    fallback: tuple[str, ...] = ()  # UPNs (or mail) of the approvers of users without a manager
    when: frozenset[EscalateOn] = frozenset({EscalateOn.KEEP})
    respond_within: timedelta = timedelta(days=7)
    on_no_response: OnNoResponse = OnNoResponse.KEEP  # the approver's silence

    def covers(self, trigger: EscalateOn) -> bool:
        return trigger in self.when

    def describe(self) -> str:
        when = ", ".join(sorted(t.value for t in self.when))
        return (
            f"escalation to the {self.approver.value} on {when}, answered within "
            f"{format_duration(self.respond_within)} (silence: {self.on_no_response.value})"
        )


def _when(value: Any) -> frozenset[EscalateOn]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("the list is empty: name keep, no, no_response or always")
    allowed = [e.value for e in EscalateOn] + [ALWAYS]
    found: set[EscalateOn] = set()
    for item in items:
        if not isinstance(item, str) or item not in allowed:
            shown = item if isinstance(item, str) else _kind(item)
            raise ValueError(f"expected one of {' | '.join(allowed)} (or a list), got {shown!r}")
        if item == ALWAYS:
            found |= {EscalateOn.NO, EscalateOn.NO_RESPONSE}
        else:
            found.add(EscalateOn(item))
    return frozenset(found)


def _approvers(value: Any) -> tuple[str, ...]:
    names = _texts(value)
    if not names:
        raise ValueError("the list is empty: name at least one approver's UPN")
    for name in names:
        if "@" not in name or any(c.isspace() or ord(c) < 32 for c in name):
            raise ValueError(f"expected a UPN or mail address like owner@contoso.com, got {name!r}")
    return tuple(dict.fromkeys(n.lower() for n in names))


def read_escalation(
    r: _Reader, asking: bool, campaign: CampaignSpec, directory: DirectoryKind
) -> Escalation | None:
    """The policy's escalation (None without the key), its problems added with their paths."""
    if r.data.get("escalation") is None:
        r.seen.add("escalation")
        return None
    e = r.sub("escalation")
    spec = Escalation(
        approver=e.get("approver", _choice(ApproverKind), ApproverKind.MANAGER),
        fallback=e.get("fallback", _approvers, (), required=True),
        when=e.get("when", _when, Escalation.when, required=True),
        respond_within=e.get("respond_within", _positive_duration, Escalation.respond_within),
        on_no_response=e.get("on_no_response", _choice(OnNoResponse), OnNoResponse.KEEP),
    )
    e.finish()
    if not asking:
        r.problem(
            "escalation", "asks the approver about the user's answer: set ask_permission: true"
        )
    elif campaign.channel not in (Channel.WEBHOOK, Channel.EMAIL, Channel.TEAMS):
        r.problem(
            "escalation",
            f"the approver is asked through campaign.channel, and {campaign.channel.value} "
            "cannot reach an approver (a Nexthink campaign goes to the user's own device): "
            "use channel webhook, email or teams",
        )
    if spec.approver is ApproverKind.MANAGER and directory is DirectoryKind.CSV:
        r.problem(
            "escalation.approver",
            "a csv members export has no managers to look up: use approver: fallback",
        )
    return spec
