"""Writes the example tenant: members and usage exports for two policies (python examples/generate.py).

The files are committed as generated for 2026-11-28; `--today` dates them from today instead, so
that the NEW and KEPT examples stay inside their grace and protection windows.
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
FIRST = [
    "alex",
    "megan",
    "lee",
    "isaiah",
    "diego",
    "adele",
    "grady",
    "joni",
    "lynne",
    "miriam",
    "nestor",
    "pradeep",
    "allan",
    "christie",
    "debra",
    "emily",
    "enrico",
    "henrietta",
    "irvin",
    "johanna",
    "lidia",
    "patti",
    "raul",
    "zrinka",
    "amara",
    "bruno",
    "chen",
    "dagny",
    "ewa",
    "farid",
    "greta",
    "hiro",
    "ines",
    "jonas",
    "kemal",
    "luca",
    "mona",
    "nadia",
    "olaf",
    "priya",
]
LAST = [
    "wilber",
    "bowen",
    "gu",
    "langer",
    "soto",
    "vance",
    "archie",
    "sherman",
    "robbins",
    "caron",
    "zapata",
    "gupta",
    "deyoung",
    "cline",
    "berg",
    "braun",
    "ferraro",
    "chavez",
    "nakamura",
    "stone",
    "holloway",
    "fernandez",
    "ortiz",
    "kowalski",
    "mbeki",
    "rossi",
    "lindqvist",
    "haddad",
    "ito",
]
DOMAIN = "northwind.example"


def people(rng: random.Random, count: int) -> list[dict[str, str]]:
    seen: set[str] = set()
    result = []
    while len(result) < count:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sam = f"{first}.{last}"
        if sam in seen:
            continue
        seen.add(sam)
        index = len(result) + 1100
        result.append(
            {
                "object_id": f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
                f"8{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}",
                "upn": f"{sam}@{DOMAIN}",
                "mail": f"{first.capitalize()}.{last.capitalize()}@{DOMAIN}",  # mixed case, as mail often is
                "sam_account_name": sam[:20],
                "sid": f"S-1-5-21-3623811015-3361044348-30300820-{index}",
                "display_name": f"{first.capitalize()} {last.capitalize()}",
            }
        )
    return result


def write_tenant(today: date, folder: Path) -> None:
    rng = random.Random(20261128)
    now = datetime(today.year, today.month, today.day, 6, tzinfo=UTC)
    staff = people(rng, 420)
    # The seed's example: used Salesforce Lightning for 3 minutes in 90 days, never said yes.
    staff[0].update(
        upn=f"alex.wilber@{DOMAIN}",
        mail=f"Alex.Wilber@{DOMAIN}",
        display_name="Alex Wilber",
        sam_account_name="alex.wilber",
    )
    staff[5].update(
        upn=f"megan.bowen@{DOMAIN}",
        mail=f"Megan.Bowen@{DOMAIN}",
        display_name="Megan Bowen",
        sam_account_name="megan.bowen",
    )
    members: list[dict[str, str]] = []
    usage: list[dict[str, str]] = []
    sf, visio = staff[:300], staff[250:400]
    sf_admins = sf[1:5]

    for index, person in enumerate(sf):
        row = {**person, "group": "SF-Lightning-Users", "added_at": ""}
        kind = (
            "seed"
            if index == 0
            else rng.choices(
                ["active", "low", "zero", "unobserved", "new", "kept", "pending"],
                weights=[62, 8, 6, 8, 6, 5, 5],
            )[0]
        )
        if kind == "new":
            row["added_at"] = (now - timedelta(days=rng.randint(2, 25))).isoformat()
        members.append(row)
        if kind == "unobserved":
            continue  # not active on any device in 30 days: the usage query never saw them
        minutes = {
            "seed": 3.0,
            "active": round(rng.uniform(6, 2400), 1),
            "low": round(rng.uniform(0.5, 4.9), 1),
            "zero": 0.0,
            "new": round(rng.uniform(0, 30), 1),
            "kept": round(rng.uniform(0, 4), 1),
            "pending": round(rng.uniform(0, 4), 1),
        }[kind]
        response, answered = "", ""
        if kind == "kept":
            response, answered = "yes", (now - timedelta(days=rng.randint(5, 60))).isoformat()
        elif kind == "pending":
            response = "pending"
        usage.append(
            {
                "user.name": person["sam_account_name"],
                "user.ad.email_address": person["mail"],
                "focus_time": "" if minutes == 0 and rng.random() < 0.5 else f"{minutes:g}",
                "campaign_response": response,
                "campaign_answered_at": answered,
            }
        )
    for person in sf_admins:
        members.append({**person, "group": "SF-Admins", "added_at": ""})
    # Some users seen by Nexthink who are not in the group: the export covers the whole estate.
    for person in staff[400:]:
        usage.append(
            {
                "user.name": person["sam_account_name"],
                "user.ad.email_address": person["mail"],
                "focus_time": f"{rng.uniform(0, 100):.1f}",
                "campaign_response": "",
                "campaign_answered_at": "",
            }
        )

    visio_usage = []
    for person in visio:
        added = (
            (now - timedelta(days=rng.randint(1, 20))).isoformat() if rng.random() < 0.05 else ""
        )
        members.append({**person, "group": "Visio-Plan2", "added_at": added})
        if rng.random() < 0.1:
            continue
        seconds = rng.choices(
            [0, rng.randint(1, 599), rng.randint(600, 90000)], weights=[8, 10, 82]
        )[0]
        visio_usage.append({"upn": person["upn"], "focus_seconds": str(seconds)})

    columns = [
        "group",
        "object_id",
        "upn",
        "mail",
        "sam_account_name",
        "sid",
        "display_name",
        "added_at",
    ]
    with (folder / "members.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(members)
    with (folder / "salesforce-usage.csv").open("w", newline="") as f:
        writer = csv.DictWriter(
            f,
            [
                "user.name",
                "user.ad.email_address",
                "focus_time",
                "campaign_response",
                "campaign_answered_at",
            ],
        )
        writer.writeheader()
        writer.writerows(usage)
    with (folder / "visio-usage.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["upn", "focus_seconds"])
        writer.writeheader()
        writer.writerows(visio_usage)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--today", action="store_true", help="date the tenant from today")
    args = parser.parse_args()
    write_tenant(date.today() if args.today else date(2026, 11, 28), HERE)
