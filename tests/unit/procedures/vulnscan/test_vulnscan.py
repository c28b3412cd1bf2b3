"""Vulnerability tests: lynis reports (real ones, captured from the lab), threshold, report, play.

tests/unit/data/lynis-web-p1-before.dat was captured on a lab host with only the identity role
(index 60, one warning); lynis-web-p1-baseline.dat on the same host after the baseline role
(index 73).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.errors import ModelError, VulnscanError
from gestic.model import load_model
from gestic.procedures.vulnscan.report import (
    Finding,
    HostResult,
    LynisReport,
    Status,
    VulnscanReport,
    collect,
    load_threshold,
    parse_report,
    read_report,
    render_html,
    to_document,
    verdict,
    write_report,
)
from gestic.store.ledger import Ledger

from ....paths import LAB_INVENTORY, ROOT, UNIT_DATA

DATA = UNIT_DATA
BEFORE = DATA / "lynis-web-p1-before.dat"
AFTER = DATA / "lynis-web-p1-baseline.dat"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _sample_for(host: str, *, index: int | None = None) -> str:
    """The captured report, as if taken on `host` (optionally with another index)."""
    lines = []
    for line in AFTER.read_text().splitlines():
        if line.startswith("hostname="):
            lines.append(f"hostname={host}")
        elif line.startswith("hardening_index=") and index is not None:
            lines.append(f"hardening_index={index}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _reports(root: Path, indexes: dict[str, int]) -> Path:
    for host, index in indexes.items():
        (root / host).mkdir(parents=True)
        (root / host / "lynis-report.dat").write_text(_sample_for(host, index=index))
    return root


# --- parsing -----------------------------------------------------------------------------


def test_parses_the_report_before_baseline() -> None:
    report = read_report(BEFORE)
    assert report.hostname == "web-p1"
    assert report.hardening_index == 60
    assert report.lynis_version == "3.0.8"
    assert report.os == "Debian GNU/Linux 12 (bookworm)"
    assert [w.test_id for w in report.warnings] == ["PKGS-7388"]
    assert report.warnings[0].message.startswith("Can't find any security repository")
    assert report.warnings[0].details == ""  # lynis writes "-" for none
    assert report.started is not None
    assert report.finished is not None
    assert report.finished >= report.started
    assert report.tests_done is not None
    assert report.tests_done > 200


def test_parses_the_report_after_baseline() -> None:
    before, after = read_report(BEFORE), read_report(AFTER)
    assert after.hardening_index == 73
    assert after.hardening_index > before.hardening_index
    assert after.warnings == ()
    assert len(after.suggestions) == 32
    assert "SSH-7408" in {s.test_id for s in after.suggestions}
    ssh = [s for s in after.suggestions if s.test_id == "SSH-7408"]
    assert ssh[0].details.startswith("MaxSessions")


def test_finding_fields_and_placeholders() -> None:
    found = Finding.parse("FILE-7524|Consider restricting file permissions|See log|text:Use chmod|")
    assert found == Finding(
        test_id="FILE-7524",
        message="Consider restricting file permissions",
        details="See log",
        solution="text:Use chmod",
    )
    assert Finding.parse("X-1|msg").details == ""


def test_incomplete_report_is_refused_naming_the_file() -> None:
    text = "\n".join(ln for ln in AFTER.read_text().splitlines() if "hardening_index" not in ln)
    with pytest.raises(VulnscanError, match=r"^web-p1\.dat: no hardening_index"):
        parse_report(text, source="web-p1.dat")


def test_malformed_line_is_refused_naming_the_line() -> None:
    text = "# Lynis Report\nhostname=web-p1\nthis is not a report line\nhardening_index=70\n"
    with pytest.raises(VulnscanError, match=r"^r\.dat:3: not a lynis report line"):
        parse_report(text, source="r.dat")


@pytest.mark.parametrize(("value", "problem"), [("abc", "not a number"), ("140", "not within")])
def test_bad_index_is_refused_naming_the_line(value: str, problem: str) -> None:
    with pytest.raises(VulnscanError, match=rf"^r\.dat:2: .*{problem}"):
        parse_report(f"hostname=x\nhardening_index={value}\n", source="r.dat")


def test_missing_report_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VulnscanError, match="cannot read"):
        read_report(tmp_path / "nope.dat")


# --- threshold ---------------------------------------------------------------------------


def test_threshold_of_the_repository_inventories() -> None:
    lab = load_threshold(load_model(LAB_INVENTORY, check_machine=False))
    production = load_threshold(load_model(ROOT / "inventory" / "production", check_machine=False))
    # the hardened lab must pass its own minimum; the unhardened one must not
    assert read_report(BEFORE).hardening_index < lab <= read_report(AFTER).hardening_index
    assert production >= lab


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("'70'", "Input should be a valid integer"),
        ("101", "Input should be less than or equal to 100"),
        ("-1", "Input should be greater than or equal to 0"),
        ("true", "Input should be a valid integer"),
        ("7.5", "Input should be a valid integer"),
        ("[70]", "Input should be a valid integer"),
    ],
)
def test_bad_threshold_names_file_key_and_line(lab_inventory: Path, bad: str, message: str) -> None:
    """The minimum is a section of the model: a bad one stops the model's load, located."""
    file = lab_inventory / "group_vars" / "all" / "vulnscan.yml"
    file.write_text(f"# comment\ngestic_vulnscan:\n  min_index: {bad}\n")
    with pytest.raises(ModelError) as err:
        load_model(lab_inventory, check_machine=False)
    assert err.value.problems == [f"{file}:3: gestic_vulnscan.min_index: {message}"]


def test_missing_threshold_is_a_clear_error(lab_inventory: Path) -> None:
    file = lab_inventory / "group_vars" / "all" / "vulnscan.yml"
    file.write_text("gestic_vulnscan: {}\n")
    with pytest.raises(ModelError) as err:
        load_model(lab_inventory, check_machine=False)
    assert err.value.problems == [f"{file}:1: gestic_vulnscan.min_index: Field required"]
    file.unlink()
    model = load_model(lab_inventory, check_machine=False)
    with pytest.raises(VulnscanError, match=r"declares no gestic_vulnscan in its group_vars/all"):
        load_threshold(model)


def test_verdict_at_the_edges() -> None:
    assert verdict(70, 70) is Status.PASSED
    assert verdict(69, 70) is Status.FAILED
    assert verdict(100, 100) is Status.PASSED
    assert verdict(0, 0) is Status.PASSED
    assert verdict(None, 0) is Status.MISSING


# --- collecting and reporting --------------------------------------------------------------


def test_collect_gives_every_model_host_a_verdict(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, routes=[])
    reports = _reports(tmp_path, {"web-p1": 73, "db-p1": 69})
    result = collect(model, reports, threshold=70, now=NOW)
    status = {h.host: h.status for h in result.hosts}
    assert set(status) == set(model.hosts)
    assert status["web-p1"] is Status.PASSED
    assert status["db-p1"] is Status.FAILED
    assert status["web-a1"] is Status.MISSING
    assert (result.count(Status.PASSED), result.count(Status.FAILED)) == (1, 1)
    assert result.count(Status.MISSING) == len(model.hosts) - 2
    assert not result.ok


def test_collect_refuses_a_report_of_another_host(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, routes=[])
    (tmp_path / "web-p1").mkdir()
    (tmp_path / "web-p1" / "lynis-report.dat").write_text(_sample_for("db-p1"))
    with pytest.raises(VulnscanError, match="report is of host 'db-p1', not 'web-p1'"):
        collect(model, tmp_path, threshold=70)


def _one_host_report(report: LynisReport, threshold: int = 70) -> VulnscanReport:
    model = load_model(LAB_INVENTORY, routes=[])
    host = model.hosts["web-p1"]
    return VulnscanReport(
        environment="lab",
        threshold=threshold,
        generated_at=NOW,
        hosts=[HostResult(host=host.name, site=host.site, threshold=threshold, report=report)],
    )


def test_document_holds_index_threshold_verdict_and_findings() -> None:
    doc = to_document(_one_host_report(read_report(BEFORE)))
    assert doc["threshold"] == 70
    assert doc["summary"] == {"passed": 0, "failed": 1, "missing": 0}
    (host,) = doc["hosts"]
    assert (host["host"], host["hardening_index"], host["status"]) == ("web-p1", 60, "failed")
    assert host["warnings"][0]["test_id"] == "PKGS-7388"
    assert len(host["suggestions"]) == len(read_report(BEFORE).suggestions)
    json.dumps(doc)  # plain data


def test_html_is_spanish_by_default_and_english_on_request() -> None:
    report = _one_host_report(read_report(AFTER))
    spanish = render_html(report)
    assert '<html lang="es">' in spanish
    assert "Pruebas de vulnerabilidad" in spanish
    assert "Cumple" in spanish
    assert "Índice mínimo exigido" in spanish
    english = render_html(report, lang="en")
    assert '<html lang="en">' in english
    assert "Vulnerability tests" in english
    assert "Passed" in english
    assert "Cumple" not in english
    with pytest.raises(VulnscanError, match="unknown language"):
        render_html(report, lang="fr")  # type: ignore[arg-type]


def test_html_escapes_what_lynis_wrote() -> None:
    text = _sample_for("web-p1") + "warning[]=X-1|<script>alert(1)</script>|-|-|\n"
    html = render_html(_one_host_report(parse_report(text, source="t")))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_write_report_writes_json_and_html(tmp_path: Path) -> None:
    paths = write_report(_one_host_report(read_report(AFTER)), tmp_path / "out", lang="en")
    assert [p.name for p in paths] == ["vulnscan-report.json", "vulnscan-report.html"]
    doc = json.loads(paths[0].read_text())
    assert doc["hosts"][0]["status"] == "passed"
    assert "Vulnerability tests" in paths[1].read_text()


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("GESTIC_STATE_DIR", str(state))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    return state


def _invoke(inventory: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--inventory", str(inventory), "vulnscan", "report", *args])


def test_report_command_passes_and_records_the_run(state: Path, tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, routes=[])
    _reports(state / "artifacts" / "vulnscan", dict.fromkeys(model.hosts, 73))
    result = _invoke(LAB_INVENTORY, "--lang", "en", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "vulnscan-report.json").read_text())
    assert doc["summary"]["passed"] == len(model.hosts)
    assert "Passed" in (tmp_path / "out" / "vulnscan-report.html").read_text()
    (run,) = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").runs(kind="vulnscan.report")
    assert run.status == "succeeded"
    assert run.details["hosts"]["web-p1"]["hardening_index"] == 73


def test_report_command_fails_below_the_minimum(state: Path, tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, routes=[])
    _reports(state / "artifacts" / "vulnscan", {**dict.fromkeys(model.hosts, 73), "db-a1": 61})
    result = _invoke(LAB_INVENTORY)
    assert result.exit_code != 0
    assert "not passed on: db-a1" in str(result.exception)
    html = (state / "artifacts" / "vulnscan" / "vulnscan-report.html").read_text()
    assert "No cumple" in html
    (run,) = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").runs(kind="vulnscan.report")
    assert run.status == "failed"
    # a stricter minimum on the command line applies to every host
    strict = _invoke(LAB_INVENTORY, "--min-index", "80")
    assert "not passed on" in str(strict.exception)


def test_report_command_stops_on_a_bad_threshold(
    state: Path, lab_inventory: Path, tmp_path: Path
) -> None:
    (lab_inventory / "group_vars" / "all" / "vulnscan.yml").write_text(
        "gestic_vulnscan:\n  min_index: high\n"
    )
    result = _invoke(lab_inventory)
    assert result.exit_code != 0
    assert "vulnscan.yml:2: gestic_vulnscan.min_index: Input should be a valid integer" in str(
        result.exception
    )
    assert not (state / "artifacts" / "vulnscan" / "vulnscan-report.json").exists()


def test_sample_reports_are_real_lynis_output() -> None:
    """Guard the fixtures: both are complete lynis 3 reports of the same lab host."""
    for path in (BEFORE, AFTER):
        text = path.read_text()
        assert text.startswith("# Lynis Report\n")
        assert "report_datetime_end=" in text


def test_write_report_with_a_bad_language_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(VulnscanError, match="unknown language"):
        write_report(_one_host_report(read_report(AFTER)), out, lang="fr")  # type: ignore[arg-type]
    assert not out.exists()
