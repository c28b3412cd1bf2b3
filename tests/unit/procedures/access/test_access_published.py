"""Access reports published for the bots (gestic.procedures.access.published) and
`gestic access report` publishing them, on SQLite and PostgreSQL (fixture `url`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.cli.rpa_context import RpaContext
from gestic.environments.context import Context
from gestic.errors import AccessReportError, TunnelError
from gestic.procedures.access import make, published
from gestic.procedures.access.published import AccessReports
from gestic.store.ledger import Ledger

from ....paths import LAB_INVENTORY, UNIT_DATA
from .samples import UNREACHABLE, lab_report_json, sample_texts

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=36)


def _at(hours_ago: float, environment: str = "lab") -> dict[str, Any]:
    report = lab_report_json(now=NOW - timedelta(hours=hours_ago))
    report["environment"] = environment
    return report


def test_publish_keeps_the_report_as_made_and_picks_the_newest_by_generation(url: str) -> None:
    with AccessReports(url) as store:
        older = store.publish(_at(30), source="ssh", run_id=7, now=NOW)
        newer = store.publish(_at(2), source="ssh", run_id=8, now=NOW)
        # published later, but made earlier (an old report sent late): not the newest
        store.publish(_at(20), source="records", run_id=9, now=NOW + timedelta(minutes=5))
        store.publish(_at(1, environment="produccion"), source="ssh", now=NOW)
        found = store.newest("lab")
        assert found is not None
        assert (found.id, found.run_id, found.source) == (newer.id, 8, "ssh")
        assert found.generated_at == NOW - timedelta(hours=2)
        assert found.data == _at(2)  # the whole report_json, unchanged
        assert found.data["hosts"][UNREACHABLE]["recorded"] is False
        assert older.sha256 != newer.sha256
        assert store.newest("nope") is None
        assert store.recent("lab", max_age=DAY, now=NOW).id == newer.id


def test_a_report_too_old_or_missing_says_which_command_makes_one(url: str) -> None:
    with AccessReports(url) as store:
        with pytest.raises(AccessReportError) as missing:
            store.recent("lab", max_age=DAY, now=NOW)
        assert "no access report of environment 'lab' has been published" in str(missing.value)
        assert "`gestic --env lab access report`" in str(missing.value)
        assert f"published in {store.display_url}" in str(missing.value)  # password masked
        store.publish(_at(40), source="ssh", now=NOW)
        with pytest.raises(AccessReportError) as old:
            store.recent("lab", max_age=DAY, now=NOW)
        message = str(old.value)
        assert "made at 2026-11-22 20:00 UTC, 40.0 h ago" in message
        assert "more than gestic_rpa.access_report_max_age_hours (36.0 h)" in message
        assert "make a fresh one on the controller with `gestic --env lab access report`" in message
        # the bound itself is still fresh
        assert store.recent("lab", max_age=timedelta(hours=40), now=NOW).source == "ssh"


def test_publication_is_bounded_in_size_and_count(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(published, "KEEP_PER_ENVIRONMENT", 3)
    with AccessReports(url) as store:
        ids = [store.publish(_at(h), source="ssh", now=NOW).id for h in (5, 4, 3, 2, 1)]
        store.publish(_at(1, environment="otro"), source="ssh", now=NOW)
        assert store.newest("lab").id == ids[-1]  # type: ignore[union-attr]
        with store._engine.connect() as conn:  # what is left: the newest 3 of lab, 1 of otro
            rows = conn.execute(published.reports_table.select()).all()
        assert sorted(r.id for r in rows if r.environment == "lab") == ids[-3:]
        assert [r.environment for r in rows].count("otro") == 1
        monkeypatch.setattr(published, "MAX_REPORT_BYTES", 1000)
        with pytest.raises(AccessReportError, match=r"more than the 1000 .* not published"):
            store.publish(_at(0), source="ssh", now=NOW)
        assert store.newest("lab").id == ids[-1]  # type: ignore[union-attr]
        with pytest.raises(AccessReportError, match="needs generated_at"):
            store.publish({"environment": "lab", "generated_at": "ayer"}, source="ssh")
        with pytest.raises(AccessReportError, match="needs its environment"):
            store.publish({"generated_at": NOW.isoformat()}, source="ssh")


class _NoSsh:
    """The lab's SSH access, never used: the records come from the samples."""

    def write(self, model: object) -> None:
        return None


@pytest.fixture
def ledger_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", url)
    return url


def collected_over_ssh(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """`collect_records` answers with the sample records (bkp-a1 unreachable); the inventory
    files it was called with are returned."""
    calls: list[Path] = []

    def collect(*, inventory: Path, access: object, artifacts_dir: Path) -> Any:
        calls.append(inventory)
        return sample_texts(), {UNREACHABLE: "UNREACHABLE"}

    monkeypatch.setattr(make, "collect_records", collect)
    monkeypatch.setattr(Context, "access", property(lambda self: _NoSsh()))
    return calls


def test_cli_report_over_ssh_is_published_and_one_from_records_only_when_asked(
    tmp_path: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = collected_over_ssh(monkeypatch)
    args = ["--inventory", str(LAB_INVENTORY), "access", "report", "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    # critical findings (the samples are altered): an error, but the report is published
    assert result.exit_code == 1, result.output
    assert calls == [LAB_INVENTORY / "hosts.yml"]
    assert "collecting the records of 6 hosts over SSH" in result.output
    assert "published for the bots (report 1)" in result.output
    (run,) = Ledger(ledger_url).runs(kind="access.report")
    assert run.status == "failed"
    assert run.details["published"]["id"] == 1
    with AccessReports(ledger_url) as store:
        found = store.newest("lab")
        assert found is not None
        assert found.run_id == run.id
        written = json.loads((tmp_path / "o" / "access-report.json").read_text(encoding="utf-8"))
        assert found.data == written  # the same JSON as the report's file
    # From saved records: not published unless asked (their age is not the report's).
    records = ["--records", str(UNIT_DATA)]
    CliRunner().invoke(cli, [*args, *records])
    with AccessReports(ledger_url) as store:
        assert store.newest("lab").id == 1  # type: ignore[union-attr]
    result = CliRunner().invoke(cli, [*args, *records, "--publish"])
    assert "published for the bots (report 2)" in result.output
    result = CliRunner().invoke(cli, [*args, "--no-publish"])
    assert "published" not in result.output
    assert len(calls) == 2


def test_a_report_that_cannot_be_published_is_written_and_says_so(
    tmp_path: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    collected_over_ssh(monkeypatch)

    def unreachable(self: RpaContext, report: object, source: str, run_id: int) -> None:
        raise TunnelError("ssh svc-p1: the port forward to 10.213.1.21:5432 did not open")

    monkeypatch.setattr(RpaContext, "publish_access_report", unreachable)
    out = tmp_path / "o"
    args = ["--inventory", str(LAB_INVENTORY), "access", "report", "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, AccessReportError)
    assert str(result.exception) == (
        f"access report written to {out}, but not published for the bots: ssh svc-p1: the port "
        "forward to 10.213.1.21:5432 did not open"
    )
    assert (out / "access-report.json").is_file()
    (run,) = Ledger(ledger_url).runs(kind="access.report")
    assert (run.status, run.summary) == ("failed", str(result.exception))
