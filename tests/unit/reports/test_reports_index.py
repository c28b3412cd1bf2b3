"""The index of the latest reports: newest per kind in the page's language, the other language
as a fallback, missing ones with their command, relative links, backups from the ledger."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.console import console
from gestic.errors import UsageError
from gestic.model import load_model
from gestic.procedures.monitoring import report
from gestic.reports import index as reports_index
from gestic.store.ledger import LEDGER_URL_ENV, Ledger

from ...paths import LAB_INVENTORY
from ..procedures.monitoring.test_monitoring_report import _day

BOGOTA = ZoneInfo("America/Bogota")


def _page(path: Path, lang: str, title: str = "informe") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><title>{title}</title></head></html>\n',
        encoding="utf-8",
    )
    return path


def _age(path: Path, seconds: float) -> None:
    """Make `path` look `seconds` old."""
    now = datetime.now(UTC).timestamp()
    os.utime(path, (now - seconds, now - seconds))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """artifacts/ and dr/evidence/ with some reports: logs and vulnerabilities are missing."""
    artifacts, evidence = tmp_path / "state" / "artifacts", tmp_path / "dr" / "evidence"
    indicators = artifacts / "indicators"
    day = _day(load_model(LAB_INVENTORY, routes=[]))
    for lang in ("es", "en"):
        report.write_report(day, indicators, lang=lang, trend=[])
    older = _page(indicators / "indicador-infraestructura-2026-11.html", "es")
    _age(older, -60)  # touched later, but an older period: the name decides
    _page(artifacts / "rpa" / "reports" / "nivel-servicio-rpa-2026-11.html", "es")
    _page(artifacts / "rpa" / "reports" / "nivel-servicio-rpa-2026-10.html", "es")
    _page(evidence / "2026-11-02T101500-site-loss-test" / "report.html", "es")
    _page(evidence / "2026-12-01T093000-site-loss-test" / "report.html", "es")
    _page(evidence / "2026-12-01T093000-site-loss-test" / "report.en.html", "en")
    (evidence / "2026-12-01T093000-site-loss-test" / "drill.json").write_text("{}")
    (artifacts / "logs" / "revision-logs-2026-11-20261201T000000Z").mkdir(parents=True)
    _page(artifacts / "access" / "access-report.html", "en")  # its name carries no language
    return artifacts, evidence


def _links(index: Path) -> dict[str, str]:
    """The page's links by their text."""

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, str] = {}
            self._href: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self._href = dict(attrs).get("href") if tag == "a" else None

        def handle_data(self, data: str) -> None:
            if self._href is not None:
                self.found[data] = self._href
                self._href = None

    parser = Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser.found


def _resolve(index: Path, href: str) -> Path:
    assert not href.startswith(("/", "file:")), href
    return (index.parent / unquote(href)).resolve()


def _write(index: Path, tree: tuple[Path, Path], lang: str) -> list[reports_index.Found]:
    artifacts, evidence = tree
    _, found = reports_index.write_index(
        index,
        artifacts=artifacts,
        evidence=evidence,
        lang=lang,
        backup_runs=[],
        environment="lab",
        zone=BOGOTA,
    )
    return found


def test_the_spanish_index_links_the_latest_spanish_reports(tree: tuple[Path, Path]) -> None:
    artifacts, evidence = tree
    index = artifacts / "index.html"
    found = {f.source.key: f for f in _write(index, tree, "es")}
    links = _links(index)
    assert set(links) == {
        "indicador-infraestructura-2026-12-06.html",
        "nivel-servicio-rpa-2026-11.html",
        "2026-12-01T093000-site-loss-test/report.html",
        "access-report.html",
    }
    for href in links.values():
        assert _resolve(index, href).is_file()
    assert links["nivel-servicio-rpa-2026-11.html"] == "rpa/reports/nivel-servicio-rpa-2026-11.html"
    assert (
        _resolve(index, links["2026-12-01T093000-site-loss-test/report.html"])
        == (evidence / "2026-12-01T093000-site-loss-test" / "report.html").resolve()
    )
    assert found["logs"].path is None
    assert found["vulnscan"].path is None
    assert found["access"].lang == "en"
    text = index.read_text(encoding="utf-8")
    assert '<html lang="es">' in text
    assert text.count("Aún no generado") == 2
    assert "<code>gestic logs review --period YYYY-MM</code>" in text
    assert "<code>gestic vulnscan report</code>" in text
    assert "Solo disponible en inglés" in text  # the access report
    assert "Ninguna copia ni verificación registrada." in text


def test_the_english_index_prefers_english_and_falls_back(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    index = tmp_path / "site" / "index-en.html"  # outside the artifacts: links go up
    found = {f.source.key: f for f in _write(index, tree, "en")}
    links = _links(index)
    assert "indicador-infraestructura-2026-12-06-en.html" in links
    assert "2026-12-01T093000-site-loss-test/report.en.html" in links
    assert "nivel-servicio-rpa-2026-11.html" in links  # only in Spanish
    assert found["rpa"].lang == "es"
    for href in links.values():
        assert href.startswith("../")
        assert _resolve(index, href).is_file()
    text = index.read_text(encoding="utf-8")
    assert "Only available in Spanish" in text
    assert "<code>gestic rpa report --period YYYY-MM --lang en</code>" in text
    assert "<code>gestic logs review --period YYYY-MM --lang en</code>" in text
    assert text.count("Not generated yet") == 2


def test_a_bad_language_writes_no_index(tree: tuple[Path, Path]) -> None:
    index = tree[0] / "index-fr.html"
    with pytest.raises(UsageError, match="unknown language"):
        _write(index, tree, "fr")
    assert not index.exists()


def test_the_language_of_a_file(tmp_path: Path) -> None:
    assert reports_index.file_lang(_page(tmp_path / "a-2026-11-en.html", "es")) == "en"
    assert reports_index.file_lang(_page(tmp_path / "report.en.html", "es")) == "en"
    assert reports_index.file_lang(_page(tmp_path / "a-2026-11.html", "es")) == "es"
    assert reports_index.file_lang(_page(tmp_path / "access-report.html", "en")) == "en"


def test_backups_show_the_latest_run_and_check_of_each_service(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.record(kind="backup.run", target="portal") as run:
        run.summary = "snapshot aaaa1111 (2.0 s)"
    with ledger.record(kind="backup.run", target="portal") as run:
        run.summary = "snapshot bbbb2222 (1.5 s)"
    with ledger.record(kind="backup.check", target="portal") as run:
        run.fail("1/2 repositories intact")
    with ledger.record(kind="backup.run", target="cartera-db") as run:
        run.summary = "snapshot cccc3333 (9.1 s)"
    runs = [r for kind in reports_index.BACKUP_KINDS for r in ledger.runs(kind=kind)]
    rows = {row.target: row for row in reports_index.backup_rows(runs)}
    assert set(rows) == {"portal", "cartera-db"}
    latest = rows["portal"].runs["backup.run"]
    assert latest is not None
    assert latest.summary.startswith("snapshot bbbb2222")
    assert rows["cartera-db"].runs["backup.check"] is None
    index = tmp_path / "index.html"
    reports_index.write_index(
        index,
        artifacts=tmp_path / "none",
        evidence=tmp_path / "none",
        lang="es",
        backup_runs=runs,
        environment="lab",
        zone=BOGOTA,
    )
    text = index.read_text(encoding="utf-8")
    assert "snapshot bbbb2222" in text
    assert "snapshot aaaa1111" not in text
    assert '<span class="failed">fallida</span>' in text
    assert "1/2 repositories intact" in text
    assert text.count("Aún no generado") == len(reports_index.sources(tmp_path, tmp_path))


def test_the_reports_index_command(
    tree: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts, evidence = tree
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setattr(console, "_width", 250)  # rich read COLUMNS when it was made
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").record(
        kind="backup.check", target="portal"
    ) as run:
        run.summary = "2/2 repositories intact"
    args = ["--inventory", str(LAB_INVENTORY), "reports", "index", "--evidence-dir", str(evidence)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    index = artifacts / "index.html"
    assert f"wrote {index}" in result.output
    assert "not generated yet: gestic vulnscan report" in result.output
    links = _links(index)
    assert "indicador-infraestructura-2026-12-06.html" in links
    assert all(_resolve(index, href).is_file() for href in links.values())
    assert "2/2 repositories intact" in index.read_text(encoding="utf-8")
    english = CliRunner().invoke(cli, [*args, "--lang", "en"])
    assert english.exit_code == 0, english.output
    assert "indicador-infraestructura-2026-12-06-en.html" in _links(artifacts / "index-en.html")
