"""Join dates from Windows AD's msDS-ReplValueMetaData, parsed from a sample of its XML values.

Samba returns no values for the attribute (see ENVIRONMENT.md), so the format is checked here on
values shaped as Windows Server writes them (one DS_REPL_VALUE_META_DATA document per value,
null-terminated); the "unknown" path runs against Samba in tests/adapters/test_ldap.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reclaim.adapters.ldap.members import join_dates, metadata_values
from reclaim.domain.model import Member, PolicyState, UsageRow, User
from reclaim.domain.selection import DecisionKind, decide, index_usage
from tests.conftest import NOW, make_policy


def value(dn: str, created: str, deleted: str = "1601-01-01T00:00:00Z", attribute: str = "member"):
    return (
        "<DS_REPL_VALUE_META_DATA>\n"
        f"\t<pszAttributeName>{attribute}</pszAttributeName>\n"
        f"\t<pszObjectDn>{dn}</pszObjectDn>\n"
        "\t<cbData>0</cbData>\n"
        "\t<pbData></pbData>\n"
        f"\t<ftimeDeleted>{deleted}</ftimeDeleted>\n"
        f"\t<ftimeCreated>{created}</ftimeCreated>\n"
        "\t<dwVersion>1</dwVersion>\n"
        f"\t<ftimeLastOriginatingChange>{created}</ftimeLastOriginatingChange>\n"
        "\t<uuidLastOriginatingDsaInvocationID>7c4a1f6e-2b0d-4c57-9a57-0f1d3c2e8b11"
        "</uuidLastOriginatingDsaInvocationID>\n"
        "\t<usnOriginatingChange>204811</usnOriginatingChange>\n"
        "\t<usnLocalChange>204811</usnLocalChange>\n"
        "\t<pszLastOriginatingDsaDN>CN=NTDS Settings,CN=DC01,CN=Servers,CN=Default-First-Site-Name,"
        "CN=Sites,CN=Configuration,DC=contoso,DC=com</pszLastOriginatingDsaDN>\n"
        "</DS_REPL_VALUE_META_DATA>\n\x00"
    ).encode()


ADA = "CN=Ada Lovelace,OU=Staff,DC=contoso,DC=com"
YESTERDAY = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_ftime_created_of_each_member_value_is_its_join_date() -> None:
    values = [
        value(ADA, YESTERDAY),
        value("CN=Bob &amp; Co,OU=Staff,DC=contoso,DC=com", "2019-05-13T14:22:31Z"),
        value("CN=Gone,OU=Staff,DC=contoso,DC=com", "2020-01-01T00:00:00Z", "2026-01-02T03:04:05Z"),
        value("CN=Legacy,OU=Staff,DC=contoso,DC=com", "1601-01-01T00:00:00Z"),
        value("CN=Mgr,DC=contoso,DC=com", "2021-01-01T00:00:00Z", attribute="managedBy"),
    ]
    assert join_dates(values) == {
        ADA.lower(): NOW - timedelta(days=1),
        "cn=bob & co,ou=staff,dc=contoso,dc=com": datetime(2019, 5, 13, 14, 22, 31, tzinfo=UTC),
    }


def test_values_are_found_under_a_ranged_attribute_name() -> None:
    raw = {"msDS-ReplValueMetaData;range=0-*": [value(ADA, YESTERDAY)], "cn": [b"SF"]}
    assert join_dates(metadata_values(raw)) == {ADA.lower(): NOW - timedelta(days=1)}
    assert metadata_values({"msDS-ReplValueMetaData": []}) == []


def test_someone_added_yesterday_is_new_on_the_first_run_with_a_90_day_grace() -> None:
    """The defect for AD: no join date was read, so run 1 made yesterday's member a CANDIDATE."""
    added = join_dates([value(ADA, YESTERDAY)])[ADA.lower()]
    member = Member(User(sam_account_name="ada"), added, added_from="msDS-ReplValueMetaData")
    usage = index_usage([UsageRow("ada", 0.0)], {"ada"}, NOW)
    policy = make_policy(usage={"match_on": "sam_account_name"}, new_member_grace="90d")
    decision = decide(member, usage, PolicyState(), policy, NOW)
    assert decision.kind is DecisionKind.NEW
    assert decision.reason == ("member for 1d (msDS-ReplValueMetaData), less than the grace of 90d")
