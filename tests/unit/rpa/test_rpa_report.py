"""The monthly Nivel del servicio RPA report: Spanish HTML by default, English option, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from gestic.cli.rpa_context import RpaContext
from gestic.environments.context import Context
from gestic.errors import ManifestError, ModelError
from gestic.model import load_model
from gestic.model.rpa_schema import Rpa
from gestic.rpa.manifest import load_bot
from gestic.rpa.queue import APPLICATION, BUSINESS, DONE, FAILED, WorkQueue
from gestic.rpa.report import trend_svg, write_report
from gestic.rpa.robots_env import ROBOTS_ENV_ENV
from gestic.rpa.sla import Period

from ...paths import ROOT
from .test_rpa_sla import BOGOTA, Seeder, bogota

SETTINGS = Rpa(target=0.9, timezone="America/Bogota")


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
    settings = load_model(ROOT / "inventory" / "lab", check_machine=False).rpa
    assert settings is not None
    assert settings.target == 0.95
    assert "conciliacion-pagos" in settings.bots
    assert settings.scheduler_inventory == "inventory/lab"
    production = load_model(ROOT / "inventory" / "production", check_machine=False).rpa
    assert production is not None
    assert production.target == 0.95


def test_bad_settings_name_file_key_and_line(lab_inventory: Path) -> None:
    """The RPA settings are a section of the model: a bad value stops its load, located."""
    rpa = lab_inventory / "group_vars" / "all" / "rpa.yml"
    rpa.write_text(
        "gestic_rpa:\n  target: 1.5\n  tarjet: 0.9\n  timezone: Mars/Olympus\n"
        "gestic_rpa_target: 0.9\n"
    )
    with pytest.raises(ModelError) as err:
        load_model(lab_inventory, check_machine=False)
    assert sorted(err.value.problems) == [
        f"{rpa}:2: gestic_rpa.target: Input should be less than or equal to 1",
        f"{rpa}:3: gestic_rpa.tarjet: Extra inputs are not permitted",
        f"{rpa}:4: gestic_rpa.timezone: Value error, unknown time zone 'Mars/Olympus'",
        f"{rpa}:5: gestic_rpa_target: 'gestic_rpa_target' is now 'gestic_rpa.target' "
        "(docs/environments.md)",
    ]


def test_the_commands_read_the_settings_from_the_model(
    lab_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rpa() -> RpaContext:
        ctx = Context(inventory=lab_inventory, state=tmp_path / "state", cache=tmp_path / "c")
        return RpaContext(ctx, None)

    # on a host of the lab, the machine's routes are the lab's own networks
    monkeypatch.setattr(
        "gestic.model.checks.machine_routes", lambda: [IPv4Network("10.213.1.0/24")]
    )
    monkeypatch.delenv(ROBOTS_ENV_ENV, raising=False)
    with pytest.raises(ModelError, match=r"overlaps this machine's route 10\.213\.1\.0/24"):
        rpa().settings  # noqa: B018 - on the controller the model checks the routes
    monkeypatch.setenv(ROBOTS_ENV_ENV, str(tmp_path / "robots-env"))  # a bots host
    assert rpa().settings.target == 0.95
    (lab_inventory / "group_vars" / "all" / "rpa.yml").unlink()
    with pytest.raises(ManifestError, match="environment 'lab' declares no gestic_rpa"):
        rpa().settings  # noqa: B018


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
