"""The RPA service in drills and failback (gestic.procedures.dr.rpa_service, drill specs)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from gestic.errors import DrillError
from gestic.model import Model, load_model
from gestic.procedures.dr import rpa_service
from gestic.procedures.dr.drill import ServiceResult, _rpa_rpo, _service_spec
from gestic.procedures.dr.plan import PLAN_FILE, Plan, load_plan

from ....paths import ROOT


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(ROOT / "inventory" / "lab", check_machine=False)


@pytest.fixture(scope="module")
def plan(model: Model) -> Plan:
    return load_plan(ROOT / PLAN_FILE, model)


def test_the_scheduler_follows_the_ledger_to_the_host_that_recovers_it(
    model: Model, plan: Plan
) -> None:
    site = {"cartera-db": "db-a1", "portal": "web-a1", "rpa": "web-a1"}
    assert rpa_service.rpa_ledger(model, site) == ("db-a1", "db-a1")
    # the principal's bots host lost alone: the ledger stays where it is
    assert rpa_service.rpa_ledger(model, {"rpa": "web-a1"}) == ("", "db-p1")
    ctx: Any = SimpleNamespace(model=model)
    spec = _service_spec(ctx, plan, "rpa", "web-a1", site)
    assert spec["kind"] == "rpa"
    assert (spec["ledger_host"], spec["expect_host"]) == ("db-a1", "db-a1")
    assert spec["units"] == ["gestic-rpa-scheduler.service"]
    assert [p["type"] for p in spec["probes"]] == ["unit", "ledger"]
    assert spec["from_host"] == "svc-p1"
    assert "requires" not in _service_spec(ctx, plan, "portal", "web-a1", site)["probes"][0]


def test_a_test_drill_refuses_an_rpa_service_cut_off_from_its_ledger(
    model: Model, plan: Plan
) -> None:
    with pytest.raises(DrillError, match="could not reach its ledger on db-p1"):
        rpa_service.check_test_bubble(model, plan, {"rpa": "web-a1"}, {"web-a1"})
    site = {"cartera-db": "db-a1", "rpa": "web-a1"}
    rpa_service.check_test_bubble(model, plan, site, {"web-a1", "db-a1"})


def test_the_rpa_rpo_is_the_ledgers(model: Model) -> None:
    ctx: Any = SimpleNamespace(model=model)
    ledger = ServiceResult(service="cartera-db", wave="datos", host="db-a1")
    ledger.marker_at, ledger.rpo_s, ledger.snapshot = 100.0, 12.5, {"id": "abc"}
    rpa = ServiceResult(service="rpa", wave="automatizacion", host="web-a1", status="ok")
    _rpa_rpo(ctx, rpa, {"cartera-db": ledger, "rpa": rpa})
    assert (rpa.marker_at, rpa.rpo_s, rpa.snapshot) == (100.0, 12.5, {"id": "abc"})
    alone = ServiceResult(service="rpa", wave="automatizacion", host="web-a1", status="ok")
    _rpa_rpo(ctx, alone, {"rpa": alone})
    assert alone.rpo_s == 0.0  # the ledger was not lost
    failed = ServiceResult(service="rpa", wave="automatizacion", host="web-a1", status="failed")
    _rpa_rpo(ctx, failed, {"cartera-db": ledger})
    assert failed.rpo_s is None


def _event(host: str, task: str, **res: Any) -> dict[str, Any]:
    return {"event": "runner_on_ok", "event_data": {"host": host, "task": task, "res": res}}


def test_failback_reports_schedulers_moved_back_and_any_left_on_the_copy(
    model: Model, plan: Plan
) -> None:
    hosts = rpa_service.failback_hosts(model, plan)
    assert hosts == ["svc-p1", "web-a1"]
    report = rpa_service.FailbackReport()
    report.event(_event("web-a1", rpa_service.SWITCH_TASK, changed=True))
    report.event(_event("svc-p1", rpa_service.SWITCH_TASK, changed=False))
    report.event(
        _event("web-a1", rpa_service.STATUS_TASK, stdout=json.dumps({"ledger_host": "db-p1"}))
    )
    report.event(
        _event("svc-p1", rpa_service.STATUS_TASK, stdout=json.dumps({"ledger_host": "db-a1"}))
    )
    assert report.undone(model) == ["RPA scheduler on web-a1 back on db-p1"]
    assert report.leftovers(model, hosts) == [
        "svc-p1: the RPA scheduler uses the ledger on db-a1, not on db-p1"
    ]
    broken = rpa_service.FailbackReport()
    broken.event(
        _event("web-a1", rpa_service.STATUS_TASK, rc=2, stdout='{"ok": false, "error": "no env"}')
    )
    assert broken.leftovers(model, ["web-a1"]) == [
        "web-a1: the RPA scheduler's ledger is unknown: no env"
    ]
    silent = rpa_service.FailbackReport()
    assert silent.leftovers(model, ["web-a1"]) == [
        "web-a1: no report of the RPA scheduler's ledger"
    ]


def test_a_plan_without_the_rpa_service_leaves_the_schedulers_alone(
    model: Model, plan: Plan
) -> None:
    without = plan.model_copy(
        update={"services": {k: v for k, v in plan.services.items() if k != "rpa"}}
    )
    assert rpa_service.failback_hosts(model, without) == []
