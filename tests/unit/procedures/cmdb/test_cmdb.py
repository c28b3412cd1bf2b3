"""The CMDB export: joining the model with gathered facts, and a real export from the lab."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gestic.model import load_model
from gestic.procedures.cmdb.assets import FactCollector, build_assets, write_exports

from ....paths import LAB_INVENTORY


def _ok_event(host: str, facts: dict[str, object]) -> dict[str, object]:
    return {"event": "runner_on_ok", "event_data": {"host": host, "res": {"ansible_facts": facts}}}


def test_collector_merges_facts_per_host() -> None:
    collector = FactCollector()
    collector(_ok_event("web-p1", {"ansible_kernel": "6.1"}))
    collector(_ok_event("web-p1", {"packages": {"nginx-light": [{"version": "1.22"}]}}))
    collector({"event": "runner_on_failed", "event_data": {"host": "db-p1", "res": {}}})
    assert set(collector.facts) == {"web-p1"}
    assert collector.facts["web-p1"]["ansible_kernel"] == "6.1"


def test_assets_join_model_and_facts(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, routes=[])
    facts = {
        "db-p1": {
            "ansible_distribution": "Debian",
            "ansible_distribution_version": "12.15",
            "ansible_processor_vcpus": 2,
            "packages": {"postgresql-15": [{"version": "15.14-0+deb12u1"}]},
        }
    }
    assets = {a.name: a for a in build_assets(model, facts)}
    assert set(assets) == set(model.hosts)
    db = assets["db-p1"]
    assert db.reachable
    assert db.os == "Debian 12.15"
    assert db.services == [{"name": "cartera-db", "tier": 1, "role": "primary"}]
    assert db.packages == {"postgresql-15": "15.14-0+deb12u1"}
    assert not assets["web-a1"].reachable
    assert assets["web-a1"].services == [{"name": "portal", "tier": 1, "role": "dr"}]
    paths = write_exports(list(assets.values()), tmp_path, environment="lab")
    assert [p.name for p in paths] == ["cmdb.json", "cmdb-hosts.csv", "cmdb-packages.csv"]
    rows = list(csv.DictReader((tmp_path / "cmdb-packages.csv").open()))
    assert rows == [
        {"host": "db-p1", "site": "principal", "package": "postgresql-15",
         "version": "15.14-0+deb12u1"}
    ]  # fmt: skip
    assert json.loads((tmp_path / "cmdb.json").read_text())["environment"] == "lab"
