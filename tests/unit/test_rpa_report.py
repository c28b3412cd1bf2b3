"""The monthly Nivel del servicio RPA report: Spanish HTML by default, English option, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gestic.errors import ManifestError
from gestic.rpa.manifest import RpaSettings, load_bot, load_settings
from gestic.rpa.queue import APPLICATION, BUSINESS, DONE, FAILED, WorkQueue
from gestic.rpa.report import trend_svg, write_report
from gestic.rpa.sla import Period

from ..paths import ROOT
from .test_rpa_sla import BOGOTA, Seeder, bogota

SETTINGS = RpaSettings(target=0.9, timezone="America/Bogota")


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, WorkQueue]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    queue = WorkQueue(url)
    seed = Seeder(url)
    bot = load_bot(ROOT / "robots" / "conciliacion-pagos")
    t = bogota(2026, 11, 3, 8, 0)
    for k in range(8):
        s = t + timedelta(hours=k)
        seed.add(bot, s, state=DONE, finished=s + timedelta(minutes=20))
    seed.add(bot, t, state=DONE, finished=t + timedelta(minutes=75))
    seed.add(bot, t, state=FAILED, finished=t, exc=APPLICATION, code="CARTERA_NO_DISPONIBLE")
    seed.add(bot, t, state=FAILED, finished=t, exc=BUSINESS, code="PAGO_MALFORMADO")
    o = bogota(2026, 10, 7, 9, 0)
    for k in range(4):
        seed.add(bot, o, state=DONE, finished=o + timedelta(minutes=10 + k))
    return url, queue


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _parse(path: Path) -> tuple[str, list[str]]:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return " ".join(" ".join(parser.chunks).split()), parser.tags


def test_spanish_report_with_trend_breaches_and_json(
    seeded: tuple[str, WorkQueue], tmp_path: Path
) -> None:
    _, queue = seeded
    bots = {"conciliacion-pagos": load_bot(ROOT / "robots" / "conciliacion-pagos")}
    now = datetime(2026, 12, 2, tzinfo=UTC)
    files = write_report(
        queue=queue, bots=bots, settings=SETTINGS, period=Period.parse("2026-11"), lang="es",
        out_dir=tmp_path / "out", months=3, environment="lab", now=now,
    )  # fmt: skip
    assert files.html.name == "nivel-servicio-rpa-2026-11.html"
    text, tags = _parse(files.html)
    assert "Nivel del servicio RPA" in text
    assert "noviembre de 2026" in text
    assert "80.0 %" in text  # 8 within SLA of 10 counted (the business exception apart)
    assert "Meta: 90.0 %" in text
    assert "No cumple la meta" in text
    assert "Terminado tarde" in text
    assert "Falla técnica (agotó reintentos)" in text
    assert "CARTERA_NO_DISPONIBLE" in text
    assert "PAGO_MALFORMADO" in text
    assert "svg" in tags
    assert "polyline" in tags
    assert "script" not in tags
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert data["overall"]["value"] == pytest.approx(0.8)
    assert data["overall"]["items_due"] == 11
    assert data["overall"]["business_exceptions"] == 1
    assert data["bots"]["conciliacion-pagos"]["sla_minutes"] == 60
    assert [t["period"] for t in data["trend"]] == ["2026-09", "2026-10", "2026-11"]
    assert [t["value"] for t in data["trend"]] == [None, 1.0, pytest.approx(0.8)]
    assert {(c["kind"], c["code"], c["count"]) for c in data["causes"]} == {
        ("late", "-", 1),
        ("technical", "CARTERA_NO_DISPONIBLE", 1),
    }
    assert "built-in method" not in text
    assert files.indicator.value == pytest.approx(0.8)


def test_english_option(seeded: tuple[str, WorkQueue], tmp_path: Path) -> None:
    _, queue = seeded
    bots = {"conciliacion-pagos": load_bot(ROOT / "robots" / "conciliacion-pagos")}
    files = write_report(
        queue=queue, bots=bots, settings=SETTINGS, period=Period.parse("2026-10"), lang="en",
        out_dir=tmp_path, now=datetime(2026, 12, 2, tzinfo=UTC),
    )  # fmt: skip
    assert files.html.name == "nivel-servicio-rpa-2026-10-en.html"
    text, _ = _parse(files.html)
    assert "RPA service level" in text
    assert "October 2026" in text
    assert "Meets the target" in text
    assert "100.0 %" in text
    assert "No breaches in the period." in text


def test_trend_svg_leaves_gaps_for_months_without_data() -> None:
    svg = trend_svg([("sep", None), ("oct", 1.0), ("nov", 0.5), ("dic", None), ("ene", 0.9)], 0.95)
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 3
    assert 'stroke-dasharray="6 4"' in svg  # the target line


def test_lab_settings_give_the_target() -> None:
    settings = load_settings(ROOT / "inventory" / "lab")
    assert settings.target == 0.95
    assert "conciliacion-pagos" in settings.bots
    assert load_settings(ROOT / "inventory" / "production").target == 0.95


def test_bad_settings_name_file_key_and_line(tmp_path: Path) -> None:
    rpa = tmp_path / "group_vars" / "all" / "rpa.yml"
    rpa.parent.mkdir(parents=True)
    rpa.write_text("gestic_rpa_target: 1.5\ngestic_rpa_tarjet: 0.9\n")
    with pytest.raises(ManifestError) as err:
        load_settings(tmp_path)
    assert f"{rpa}:1: gestic_rpa_target:" in str(err.value)
    assert f"{rpa}:2: gestic_rpa_tarjet: unknown RPA setting" in str(err.value)


def test_cli_report(seeded: tuple[str, WorkQueue], tmp_path: Path) -> None:
    url, _ = seeded
    env = {
        **os.environ,
        "GESTIC_LEDGER_URL": url,
        "GESTIC_STATE_DIR": str(tmp_path / "state"),
        "GESTIC_ROOT": str(ROOT),
    }
    out = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "gestic", "rpa", "report", "--period", "2026-11", "--output",
         str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Nivel del servicio RPA 2026-11" in proc.stdout
    data = json.loads((out / "nivel-servicio-rpa-2026-11.json").read_text(encoding="utf-8"))
    assert data["target"] == 0.95
    assert data["overall"]["value"] == pytest.approx(0.8)
    bad = subprocess.run(
        [sys.executable, "-m", "gestic", "rpa", "report", "--period", "noviembre"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "YYYY-MM" in bad.stdout
    assert BOGOTA.key == "America/Bogota"
