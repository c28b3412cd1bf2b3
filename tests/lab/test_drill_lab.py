"""DR drills on the real lab: RTO/RPO measured, evidence written, and the three faults.

* a DR host down during a drill: the drill names the wave and service that failed, and in
  --test mode nothing on the primary site changes;
* a drill interrupted halfway: cleanup (or the next drill) converges to a clean state;
* a real site loss: the primary hosts are stopped, the DR site serves, failback returns.

The RPA service comes back on the DR site's bots host (web-a1) with the shared ledger restored
with cartera-db (db-a1): its scheduler reads there what db-p1 held at the backup, and every
cleanup or failback puts it back on db-p1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gestic.lab import host as lab_host
from gestic.procedures.backup.ops import agent, backup_now
from gestic.procedures.dr import isolation
from gestic.procedures.dr.drill import run_drill
from gestic.procedures.dr.evidence import write_evidence
from gestic.procedures.dr.failback import cleanup, load_state
from gestic.procedures.dr.plan import PLAN_FILE, Plan, Step, load_plan

from .labkit import ROOT, Lab, on_host

SCHEDULER_ENV = "/etc/gestic/rpa-scheduler.env"
DR_CA = "/etc/gestic/rpa-ledger-dr-ca.pem"
SEED_BOT = "dr-drill"


class Interrupted(Exception):
    pass


def _plan(lab: Lab) -> Plan:
    return load_plan(ROOT / PLAN_FILE, lab.ctx.model)


def _fresh_backups(lab: Lab) -> None:
    for service in ("cartera-db", "portal"):
        backup_now(lab.ctx, service)


def _psql(lab: Lab, host: str, sql: str, database: str = "gestic") -> str:
    return on_host(
        lab.ctx,
        host,
        f'runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {database} -c "{sql}"',
    ).strip()


def _seed_ledger(lab: Lab) -> int:
    """One finished work item of a bot no schedule runs, in the shared ledger on db-p1; the
    number of items the ledger then holds (what the DR copy must show)."""
    _psql(
        lab,
        "db-p1",
        "INSERT INTO gestic_rpa_items (bot, queue, state, payload, created_at, available_at,"
        " updated_at, attempts, max_attempts, dead_letter) VALUES"
        f" ('{SEED_BOT}', '{SEED_BOT}.marca', 'done', '{{}}', now(), now(), now(), 0, 1, false)",
    )
    return int(_psql(lab, "db-p1", "SELECT count(*) FROM gestic_rpa_items"))


def _unseed_ledger(lab: Lab) -> None:
    _psql(lab, "db-p1", f"DELETE FROM gestic_rpa_items WHERE bot = '{SEED_BOT}'")


def _scheduler_ledger(lab: Lab, host: str = "web-a1") -> str:
    """The database host the bots host's scheduler environment names (never its password)."""
    found = on_host(lab.ctx, host, f"grep -o '@[a-z0-9-]*:' {SCHEDULER_ENV} || true").strip()
    return found.strip("@:")


def _assert_rpa_back_on_the_primary(lab: Lab) -> None:
    assert _scheduler_ledger(lab) == "db-p1"
    assert (
        on_host(lab.ctx, "web-a1", f"test -e {DR_CA} && echo left || echo gone").strip() == "gone"
    )
    active = "systemctl is-active gestic-rpa-scheduler.service"
    assert on_host(lab.ctx, "web-a1", active).strip() == "active"
    listed = _psql(lab, "db-a1", "SELECT datname FROM pg_database ORDER BY 1", "postgres")
    assert "gestic" not in listed.split(), listed  # the recovered copy is gone


def _endpoint(lab: Lab, host: str) -> str:
    root = lab_host.host_dir(lab.ctx.lab_stack.settings.state_dir, host) / "root"
    for line in (root / "etc/hosts").read_text().splitlines():
        if "portal.icetex.lab" in line:
            return line.split()[0]
    return ""


def test_test_drill_measures_rto_rpo_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    ctx = lab.ctx
    items = _seed_ledger(lab)
    try:
        _fresh_backups(lab)
        result = run_drill(
            ctx, _plan(lab), scenario="site-loss", test=True, approve=lambda _s: True
        )
    finally:
        _unseed_ledger(lab)
    assert result.ok, result.breaches()
    by_name = {s.service: s for s in result.services}
    assert [w.name for w in result.waves] == ["datos", "automatizacion", "aplicaciones"]
    # the ledger came back with the portfolio, and web-a1's scheduler works it on db-a1
    ledger_probe = [p for p in by_name["cartera-db"].probes if p["name"].startswith("la cola")]
    assert [p["ok"] for p in ledger_probe] == [True], by_name["cartera-db"].probes
    rpa = by_name["rpa"]
    assert (rpa.wave, rpa.host) == ("automatizacion", "web-a1")
    assert [p["type"] for p in rpa.probes] == ["unit", "ledger"]
    assert rpa.probes[1]["detail"] == f"gestic_rpa_items on db-a1: {items} rows", rpa.probes
    assert rpa.rto_s is not None
    assert by_name["cartera-db"].rto_s is not None
    assert rpa.rto_s > by_name["cartera-db"].rto_s  # after its ledger's wave
    assert rpa.rpo_s == by_name["cartera-db"].rpo_s  # its data is the ledger
    assert rpa.snapshot == by_name["cartera-db"].snapshot
    for svc in by_name.values():
        assert svc.rto_s is not None
        assert 0 < svc.rto_s <= svc.rto_target_s
        assert svc.rpo_s is not None
        assert 0 <= svc.rpo_s <= svc.rpo_target_s
        assert svc.irreducible_s is not None
        # the overhead over the irreducible time is a speed goal: `nox -s bench` (dr) measures it
        assert svc.irreducible_s <= svc.rto_s
    assert by_name["portal"].rto_s > by_name["cartera-db"].rto_s  # waves in order
    assert result.cleanup is not None
    assert result.cleanup.ok, result.cleanup
    assert load_state(ctx) is None
    assert _endpoint(lab, "web-p1") == str(ctx.model.hosts["web-p1"].address)
    assert "RPA scheduler on web-a1 back on db-p1" in result.cleanup.undone
    _assert_rpa_back_on_the_primary(lab)
    evidence = write_evidence(result, tmp_path, lang="es")
    record = json.loads(evidence.record.read_text())
    assert record["ok"]
    assert record["user"]
    assert "services" in record
    html = evidence.report.read_text()
    assert "Simulacro de recuperación de desastres" in html
    assert "<svg" in html
    assert [s["service"] for s in record["services"]] == ["cartera-db", "rpa", "portal"]
    for report in (html, write_evidence(result, tmp_path, lang="en").report.read_text()):
        assert "<td>automatizacion</td><td>rpa</td><td>web-a1</td>" in report
        assert "el programador alcanza la cola en el sitio alterno (ledger)" in report
    english = write_evidence(result, tmp_path, lang="en").report.read_text()
    assert "Disaster recovery drill" in english


def test_host_loss_recovers_only_that_hosts_services(lab: Lab) -> None:
    """The merge workflow's short drill: web-p1 lost, only the portal recovered (test mode)."""
    ctx = lab.ctx
    _fresh_backups(lab)
    result = run_drill(
        ctx, _plan(lab), scenario="host-loss", host="web-p1", test=True, approve=lambda _s: True
    )
    assert result.ok, result.breaches()
    assert [(s.service, s.host) for s in result.services] == [("portal", "web-a1")]
    assert [w.name for w in result.waves] == ["aplicaciones"]
    assert result.cleanup is not None
    assert result.cleanup.ok, result.cleanup
    assert load_state(ctx) is None
    assert _endpoint(lab, "web-p1") == str(ctx.model.hosts["web-p1"].address)


def test_a_dr_host_down_fails_the_drill_naming_wave_and_service(lab: Lab) -> None:
    ctx = lab.ctx
    settings = ctx.lab_stack.settings
    _fresh_backups(lab)
    primary_before = _endpoint(lab, "web-p1")
    lab_host.stop_host(state_dir=settings.state_dir, name="db-a1")
    try:
        result = run_drill(
            ctx, _plan(lab), scenario="site-loss", test=True, approve=lambda _s: True
        )
        assert not result.ok
        breaches = result.breaches()
        assert any("wave 'datos', service 'cartera-db' on db-a1" in b for b in breaches), breaches
        assert any("service 'portal'" in b and "not attempted" in b for b in breaches)
        # test mode: the primary site kept running and was not touched
        assert all(
            lab_host.host_pid(state_dir=settings.state_dir, name=h) is not None
            for h in ("web-p1", "db-p1", "svc-p1")
        )
        assert _endpoint(lab, "web-p1") == primary_before
        status = agent(ctx, "db-p1", "status")
        assert status.data["recoveries"] == []
        assert status.data["databases"] == []
    finally:
        final = cleanup(ctx, _plan(lab))  # starts db-a1 again (pulumi up) and verifies
    assert final.ok, final.leftovers


def test_an_interrupted_drill_is_cleaned_up_by_cleanup_and_by_a_rerun(lab: Lab) -> None:
    ctx = lab.ctx
    _fresh_backups(lab)

    def stop_before_the_owner_confirms(step: Step) -> bool:
        if step.at == "after-probes":  # every wave has run: the most left behind
            raise Interrupted(step.id)
        return True

    with pytest.raises(Interrupted):
        run_drill(
            ctx, _plan(lab), scenario="site-loss", test=True, approve=stop_before_the_owner_confirms
        )
    assert load_state(ctx) is not None
    assert isolation.isolation_rules(ctx.lab_stack.settings.lab)
    assert agent(ctx, "db-a1", "status").data["recoveries"] == ["cartera-db"]
    assert _scheduler_ledger(lab) == "db-a1"  # wave automatizacion ran before the interruption
    assert _endpoint(lab, "web-a1") == str(ctx.model.hosts["web-a1"].address)  # names switched
    # a new drill first converges the leftovers, then runs
    rerun = run_drill(ctx, _plan(lab), scenario="site-loss", test=True, approve=lambda _s: True)
    assert rerun.ok, rerun.breaches()
    _assert_rpa_back_on_the_primary(lab)
    again = cleanup(ctx, _plan(lab))
    assert again.ok, again
    assert not again.undone, again


def test_real_site_loss_then_failback(lab: Lab) -> None:
    ctx = lab.ctx
    settings = ctx.lab_stack.settings
    _fresh_backups(lab)
    try:
        result = run_drill(ctx, _plan(lab), scenario="site-loss", approve=lambda _s: True)
        assert result.ok, result.breaches()
        assert result.cleanup is None
        for name in ("web-p1", "db-p1", "svc-p1"):
            assert lab_host.host_pid(state_dir=settings.state_dir, name=name) is None
        assert _endpoint(lab, "web-a1") == str(ctx.model.hosts["web-a1"].address)
        rpa = {s.service: s for s in result.services}["rpa"]
        assert (rpa.host, rpa.status) == ("web-a1", "ok")
        assert _scheduler_ledger(lab) == "db-a1"
    finally:
        back = cleanup(ctx, _plan(lab))
    assert back.ok, back.leftovers
    assert sorted(back.started_hosts) == ["db-p1", "svc-p1", "web-p1"]
    assert _endpoint(lab, "web-a1") == str(ctx.model.hosts["web-p1"].address)
    _assert_rpa_back_on_the_primary(lab)
    assert _scheduler_ledger(lab, "svc-p1") == "db-p1"
