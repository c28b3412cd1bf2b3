"""Incident records: merged sightings, filters, MTTR, export; breaches of the ledger's runs
(backups, drills, vulnerability tests, RPA items) opened and closed; the `incidents` command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import IncidentError
from gestic.procedures.monitoring import alerts, breaches
from gestic.procedures.monitoring.incidents import (
    Incident,
    IncidentLog,
    export,
    mttr_by_month,
    recurring,
)
from gestic.rpa.sla import Breach
from gestic.store.ledger import LEDGER_URL_ENV, Ledger

from ....paths import LAB_INVENTORY

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # 18:00 in Bogotá: still November there
BOGOTA = ZoneInfo("America/Bogota")


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _alert(
    start: float, end: float | None, key: str = "GesticServiceDown/service=portal"
) -> Incident:
    return Incident(
        source="alert", key=key, started_at=_at(start), ended_at=None if end is None else _at(end),
        service="portal", host="web-p1", summary="portal down",
    )  # fmt: skip


@pytest.fixture
def log(url: str) -> Iterator[IncidentLog]:
    """An incident log on SQLite, then on PostgreSQL."""
    incident_log = IncidentLog(url)
    yield incident_log
    incident_log.close()


def test_the_same_alert_seen_twice_is_one_incident(log: IncidentLog) -> None:
    first, added = log.record("lab", _alert(0, 5))
    assert added
    again, changed = log.record("lab", _alert(0, 5))
    assert (again, changed) == (first, False)
    # the other monitoring server saw it start a little earlier: widened, not duplicated
    widened, changed = log.record("lab", _alert(-0.5, 5))
    assert (widened, changed) == (first, True)
    assert log.get(first).started_at == _at(-0.5)
    assert len(log.list(target="lab")) == 1


def test_an_open_incident_closes_when_it_is_seen_resolved(log: IncidentLog) -> None:
    pk, _ = log.record("lab", _alert(0, None))
    assert log.get(pk).open
    assert log.record("lab", _alert(0, 7)) == (pk, True)
    closed = log.get(pk)
    assert closed.ended_at == _at(7)
    assert closed.duration_s == 420
    # a late sighting of it still open does not reopen it
    assert log.record("lab", _alert(1, None)) == (pk, False)
    assert not log.get(pk).open


def test_separate_outages_and_other_environments_stay_apart(log: IncidentLog) -> None:
    a, _ = log.record("lab", _alert(0, 5))
    b, _ = log.record("lab", _alert(30, 35))
    c, _ = log.record("other", _alert(0, 5))
    assert len({a, b, c}) == 3
    assert [r.id for r in log.list(target="lab")] == [b, a]  # newest first
    assert [r.id for r in log.list(target="lab", since=_at(10))] == [b]
    assert [r.id for r in log.list(target="lab", until=_at(10))] == [a]


def test_filters_and_closing_by_hand(log: IncidentLog) -> None:
    alert, _ = log.record("lab", _alert(0, 5))
    backup, _ = log.record(
        "lab",
        Incident(source="backup", key="check:cartera-db", started_at=_at(10),
                 service="cartera-db", summary="check failed"),
    )  # fmt: skip
    assert [r.id for r in log.list(source="backup")] == [backup]
    assert [r.id for r in log.list(service="portal")] == [alert]
    assert [r.id for r in log.list(open_only=True)] == [backup]
    closed = log.resolve(backup, when=_at(70), by="operator", note="repository rebuilt")
    assert closed.duration_s == 3600
    assert closed.details["resolution"] == "repository rebuilt"
    with pytest.raises(IncidentError, match="already closed"):
        log.resolve(backup, when=_at(80), by="operator", note="again")
    with pytest.raises(IncidentError, match="no incident 9999"):
        log.get(9999)


def test_a_malformed_incident_is_refused() -> None:
    with pytest.raises(IncidentError, match="unknown incident source"):
        Incident(source="mail", key="x", started_at=T0)  # type: ignore[arg-type]
    with pytest.raises(IncidentError, match="time zone"):
        Incident(source="alert", key="x", started_at=T0.replace(tzinfo=None))
    with pytest.raises(IncidentError, match="ends before it starts"):
        Incident(source="alert", key="x", started_at=_at(5), ended_at=_at(1))


def test_mttr_is_per_month_in_the_zone_and_export_has_the_desk_columns(log: IncidentLog) -> None:
    log.record("lab", _alert(0, 10))  # 18:00 Bogotá, 30 November
    log.record("lab", _alert(120, 150))  # 20:00 Bogotá: November too (December in UTC)
    log.record("lab", _alert(60 * 24 * 3, 60 * 24 * 3 + 4))  # December
    log.record("lab", _alert(60 * 24 * 4, None))  # open: not in the MTTR
    records = log.list(target="lab")
    assert mttr_by_month(records, BOGOTA) == {"2026-11": 1200.0, "2026-12": 240.0}
    assert mttr_by_month(records, UTC) == {"2026-11": 600.0, "2026-12": 1020.0}
    rows = list(csv.DictReader(io.StringIO(export(records, "csv"))))
    assert len(rows) == 4
    assert set(rows[0]) >= {"id", "service", "host", "started_at", "ended_at", "duration_s"}
    assert [r["open"] for r in rows] == ["True", "False", "False", "False"]
    data = json.loads(export(records, "json"))
    assert [d["duration_s"] for d in data] == [None, 240.0, 1800.0, 600.0]


def test_a_failure_that_keeps_recurring_is_a_candidate_problem(log: IncidentLog) -> None:
    for start in (0, 30, 60):
        log.record("lab", _alert(start, start + 2))
    log.record("lab", _alert(90, None))
    log.record("lab", _alert(0, 1, key="GesticHostDown/host=db-p1"))
    (problem,) = recurring(log.list(target="lab"), min_count=3)
    assert (problem.key, problem.count, problem.open) == ("GesticServiceDown/service=portal", 4, 1)
    assert problem.down_s == 360
    assert (problem.first, problem.last) == (_at(0), _at(90))
    assert recurring(log.list(target="lab"), min_count=5) == []


def test_alert_firings_split_on_gaps_and_a_recent_one_stays_open() -> None:
    labels = (("alertname", "GesticServiceDown"), ("service", "portal"), ("host", "web-p1"),
              ("gestic_server", "svc-p1"))  # fmt: skip
    base = T0.timestamp()
    points = [(base + 15 * k, 1.0) for k in range(4)] + [
        (base + 600 + 15 * k, 1.0) for k in range(3)
    ]
    found = list(alerts.firings({labels: points}, interval=15, now=base + 600 + 30 + 5))
    assert [(i.started_at, i.ended_at) for i in found] == [
        (T0, T0 + timedelta(seconds=60)),
        (T0 + timedelta(seconds=600), None),
    ]
    assert found[0].key == "GesticServiceDown/host=web-p1/service=portal"  # no server label
    assert (found[0].service, found[0].host) == ("portal", "web-p1")


# -- breaches from the ledger ------------------------------------------------------------------


def _run(ledger: Ledger, kind: str, target: str, *, ok: bool, **details: Any) -> None:
    with ledger.record(kind=kind, target=target) as run:
        run.add_details(details)
        run.summary = "fine" if ok else "1/2 repositories intact"
        if not ok:
            run.fail(run.summary)


def _drill_service(service: str, *, rto_s: float, rto_target_s: float = 60.0) -> dict[str, Any]:
    return {
        "service": service, "host": f"{service}-d1", "rto_s": rto_s, "rto_target_s": rto_target_s,
        "rto_ok": rto_s <= rto_target_s, "rpo_s": 5.0, "rpo_target_s": 900.0, "rpo_ok": True,
        "error": "",
    }  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as recorded:
        yield recorded


def test_a_failed_backup_check_is_open_until_a_check_passes(ledger: Ledger) -> None:
    _run(ledger, "backup.check", "cartera-db", ok=True)
    _run(ledger, "backup.check", "cartera-db", ok=False)
    _run(ledger, "backup.check", "cartera-db", ok=False)  # still broken: the same incident
    _run(ledger, "backup.check", "portal", ok=False)
    _run(ledger, "backup.check", "cartera-db", ok=True)
    runs = {r.id: r for r in ledger.runs(kind="backup.check")}
    found = {i.key: i for i in breaches.collect(ledger, "lab")}
    assert set(found) == {"check:cartera-db", "check:portal"}
    db = found["check:cartera-db"]
    assert db.service == "cartera-db"
    assert db.started_at == runs[2].started_at
    assert db.ended_at == runs[5].started_at
    assert db.details["repaired_by_run"] == 5
    assert "1/2 repositories intact" in db.summary
    assert found["check:portal"].ended_at is None


def test_drill_breaches_are_per_service_and_objective(ledger: Ledger) -> None:
    slow = [_drill_service("portal", rto_s=95.0), _drill_service("cartera-db", rto_s=30.0)]
    _run(ledger, "drill.test", "site-loss", ok=False, scenario="site-loss", test=True,
         services=slow)  # fmt: skip
    _run(ledger, "drill.test", "site-loss", ok=True, scenario="site-loss", test=True,
         services=[_drill_service("portal", rto_s=40.0)])  # fmt: skip
    found = breaches.collect(ledger, "lab")
    assert [i.key for i in found] == ["site-loss:portal:rto"]
    (portal,) = found
    assert portal.source == "drill"
    assert portal.ended_at is not None
    assert portal.summary == "RTO 95.0 s over the target 60.0 s in the site-loss drill (test)"


def test_vulnerability_tests_under_the_threshold_are_per_host(ledger: Ledger) -> None:
    hosts = {"web-p1": {"status": "failed", "hardening_index": 61},
             "db-p1": {"status": "passed", "hardening_index": 80}}  # fmt: skip
    _run(ledger, "vulnscan.report", "lab", ok=False, threshold=70, hosts=hosts)
    _run(ledger, "vulnscan.report", "production", ok=False, threshold=70,
         hosts={"app-1": {"status": "missing"}})  # fmt: skip
    (web,) = breaches.collect(ledger, "lab")
    assert (web.key, web.host, web.ended_at) == ("host:web-p1", "web-p1", None)
    assert web.summary == "vulnerability test failed on web-p1: hardening index 61 (minimum 70)"
    assert web.details["hardening_index"] == 61


def test_breaches_sync_twice_changes_nothing_the_second_time(ledger: Ledger) -> None:
    _run(ledger, "backup.verify", "portal", ok=False, host="web-d1")
    log = IncidentLog.beside(ledger)
    try:
        assert breaches.sync_breach_incidents(ledger, log, "lab", "lab", since=None) == 1
        assert breaches.sync_breach_incidents(ledger, log, "lab", "lab", since=None) == 0
        (record,) = log.list(target="lab")
        assert (record.source, record.key, record.host) == ("backup", "verify:portal", "web-d1")
        _run(ledger, "backup.verify", "portal", ok=True, host="web-d1")
        assert breaches.sync_breach_incidents(ledger, log, "lab", "lab", since=None) == 1
        assert not log.get(record.id).open
    finally:
        log.close()


def test_rpa_breaches_become_incidents() -> None:
    def breach(kind: str, finished: datetime | None) -> Breach:
        return Breach(
            item_id=7, bot="conciliacion-pagos", kind=kind, created_at=_at(-30), due_at=_at(0),
            finished_at=finished, code="CARTERA_NO_DISPONIBLE" if kind == "technical" else "",
            message="", attempts=3,
        )  # fmt: skip

    late, overdue, technical = breaches.rpa_incidents(
        [breach("late", _at(12)), breach("overdue", None), breach("technical", _at(-5))]
    )
    assert (late.started_at, late.ended_at) == (_at(0), _at(12))
    assert late.key == "item:conciliacion-pagos:7"
    assert overdue.ended_at is None
    assert (technical.started_at, technical.ended_at) == (_at(-5), None)
    assert "failed: CARTERA_NO_DISPONIBLE" in technical.summary


# -- the command -------------------------------------------------------------------------------


def test_the_incidents_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    monkeypatch.setattr(console, "_width", 250)  # rich read COLUMNS when it was made
    target = Context.from_env(LAB_INVENTORY).target
    log = IncidentLog(url)
    now = datetime.now(UTC)
    try:
        pk, _ = log.record(target, Incident(
            source="alert", key="GesticServiceDown/service=portal", service="portal",
            host="web-p1", started_at=now - timedelta(minutes=20),
            ended_at=now - timedelta(minutes=17), summary="GesticServiceDown: service=portal",
        ))  # fmt: skip
        log.record(target, Incident(source="backup", key="check:cartera-db",
                                    started_at=now - timedelta(minutes=5), service="cartera-db",
                                    summary="check failed"))  # fmt: skip
    finally:
        log.close()
    base = ["--inventory", str(LAB_INVENTORY), "incidents"]
    listed = CliRunner().invoke(cli, [*base, "list"])
    assert listed.exit_code == 0, listed.output
    assert "GesticServiceDown: service=portal" in listed.output
    assert "3 min 00 s" in listed.output
    month = now.astimezone(BOGOTA).strftime("%Y-%m")
    assert f"MTTR {month}: 3 min 00 s over 1 resolved incidents" in listed.output
    only_open = CliRunner().invoke(cli, [*base, "list", "--open"])
    assert "check failed" in only_open.output
    assert "portal" not in only_open.output
    bad = CliRunner().invoke(cli, [*base, "list", "--service", "nope"])
    assert bad.exit_code != 0
    assert "not a service of" in str(bad.exception)
    shown = CliRunner().invoke(cli, [*base, "show", str(pk)])
    assert shown.exit_code == 0, shown.output
    assert "web-p1" in shown.output
    assert "-05:00" in shown.output
    missing = CliRunner().invoke(cli, [*base, "show", "999"])
    assert missing.exit_code != 0
    assert "no incident 999" in str(missing.exception)
    out = tmp_path / "desk" / "incidents.csv"
    exported = CliRunner().invoke(cli, [*base, "export", "--format", "csv", "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 2
    problems = CliRunner().invoke(cli, [*base, "problems", "--min-count", "2"])
    assert problems.exit_code == 0, problems.output
    assert "no failure recurred 2 times or more" in problems.output
    as_json = CliRunner().invoke(cli, [*base, "export", "--format", "json"])
    assert [d["source"] for d in json.loads(as_json.output)] == ["backup", "alert"]
