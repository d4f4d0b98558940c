"""The settings of seat verification: which SKU a policy verifies, and that `validate` names the
Graph settings an AD policy needs once it names an Entra SKU."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reclaim.domain.policy import PolicyError
from tests.conftest import make_policy
from tests.unit.test_cli import cli

SKU = "c5928f49-12ba-48f7-ada3-0d743a3601d5"
AD_POLICY = f"""policies:
  - name: visio-ad
    application: Microsoft Visio
    directory: {{kind: ad, group: "CN=Visio,OU=Groups,DC=contoso,DC=test"}}
    usage: {{source: csv, file: usage.csv, match_on: upn}}
    licence: {{monthly_cost: 10, entra_sku_id: "{SKU}"}}
"""


def test_the_sku_verified_depends_on_the_directory() -> None:
    entra = make_policy(directory={"kind": "entra", "group": "g"}, licence={"sku_id": SKU})
    ad = make_policy(directory={"kind": "ad", "group": "CN=x"}, licence={"entra_sku_id": SKU})
    assert entra.seat_sku == SKU and ad.seat_sku == SKU
    assert make_policy(directory={"kind": "ad", "group": "CN=x"}).seat_sku == ""
    assert ad.licence.seat_check_after == timedelta(minutes=15)
    assert ad.licence.seat_check_within == timedelta(hours=48)


def test_entra_sku_id_on_an_entra_group_says_to_use_sku_id() -> None:
    with pytest.raises(PolicyError, match=r"licence\.entra_sku_id: .*uses sku_id"):
        make_policy(directory={"kind": "entra", "group": "g"}, licence={"entra_sku_id": SKU})
    with pytest.raises(PolicyError, match=r"licence\.seat_check_within"):
        make_policy(licence={"seat_check_within": "0s"})


def test_validate_names_the_graph_settings_an_entra_sku_needs(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(AD_POLICY)
    code, out, err = cli("validate", "--policies", str(path), env={})
    assert code == 2 and "Traceback" not in err
    assert "visio-ad" in err and "RECLAIM_TENANT_ID" in err and "RECLAIM_CLIENT_ID" in err
    env = {
        "RECLAIM_TENANT_ID": "t",
        "RECLAIM_CLIENT_ID": "c",
        "RECLAIM_GRAPH_CLIENT_SECRET_NAME": "graph-client-secret",
        "RECLAIM_SECRETS_SOURCE": "env",
    }
    code, out, err = cli("validate", "--policies", str(path), env=env)
    assert code == 0 and "1 policy(ies) valid" in out, err
