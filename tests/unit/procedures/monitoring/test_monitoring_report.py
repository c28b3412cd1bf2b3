"""The infrastructure indicator's report (HTML in both languages, JSON) and `gestic indicators`:
real figures from `indicator.compute`, outage bars, the trend, nothing written on errors."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from gestic.cli.main import cli
from gestic.console import console
from gestic.errors import MonitoringDataMissing, MonitoringError, UsageError
from gestic.model import Model, load_model
from gestic.procedures.monitoring import report, service
from gestic.procedures.monitoring.indicator import (
    InfraIndicator,
    ServerData,
    Window,
    compute,
    parse_period,
)
from gestic.procedures.monitoring.prometheus import Series, labels_of
from gestic.rpa.manifest import load_bot
from gestic.rpa.queue import BUSINESS, DONE, FAILED, WorkQueue
from gestic.store.ledger import LEDGER_URL_ENV, Ledger

from ....paths import LAB_INVENTORY, ROOT
from ...rpa.test_rpa_sla import Seeder, bogota

BOGOTA = ZoneInfo("America/Bogota")
STEP = 5.0  # the lab's scrape interval


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(LAB_INVENTORY, routes=[])


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BOGOTA)  # type: ignore[misc]


def _server(
    model: Model,
    start: datetime,
    end: datetime,
    down: dict[str, tuple[datetime, datetime]],
    *,
    skip: tuple[datetime, datetime] | None = None,
) -> ServerData:
    """`gestic:service_up` of every service and host every STEP s from `start` to `end`: 0
    inside the service's `down` span; no samples at all inside `skip`."""
    times, t = [], start.timestamp()
    while t < end.timestamp():
        if skip is None or not skip[0].timestamp() <= t < skip[1].timestamp():
            times.append(t)
        t += STEP
    service_up: Series = {}
    for svc in model.services.values():
        lo, hi = (d.timestamp() for d in down.get(svc.name, (start, start)))
        for host in svc.hosts:
            service_up[labels_of({"service": svc.name, "host": host})] = [
                (t, 0.0 if lo <= t < hi else 1.0) for t in times
            ]
    self_up: Series = {labels_of({"job": "prometheus"}): [(t, 1.0) for t in times]}
    return ServerData("svc-p1", service_up, self_up)


PORTAL_DOWN = (_local(2026, 12, 6, 10, 0), _local(2026, 12, 6, 10, 30))
REGISTROS_DOWN = (_local(2026, 12, 6, 22, 0), _local(2026, 12, 6, 22, 10))
WINDOW = Window(
    start=_local(2026, 12, 6, 21, 55),
    end=_local(2026, 12, 6, 22, 20),
    services=("registros",),
    reason="actualización del receptor",
    change="CHG-77",
    origin="model",
)


def _day(model: Model) -> InfraIndicator:
    """2026-12-06: portal down 30 min, registros down 10 min inside an approved window."""
    period = parse_period("2026-12-06", BOGOTA)
    down = {"portal": PORTAL_DOWN, "registros": REGISTROS_DOWN}
    data = _server(model, period.start - timedelta(minutes=1), period.end, down)
    return compute(model, [data], period, windows=[WINDOW], now=period.end + timedelta(hours=1))


def _month(model: Model, label: str = "2026-12") -> InfraIndicator:
    """A running month: the monitoring starts at 01:00 on the 1st, now is the 2nd at 06:00."""
    period = parse_period(label, BOGOTA)
    born = period.start + timedelta(hours=1)
    now = period.start + timedelta(days=1, hours=6)
    down = {"transferencia": (born + timedelta(hours=3), born + timedelta(hours=3, minutes=12))}
    return compute(model, [_server(model, born, now, down)], period, now=now)


@pytest.fixture(scope="module")
def day(model: Model) -> InfraIndicator:
    return _day(model)


class _Page(HTMLParser):
    """The page's text and its SVG bars (class, tooltip)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.bars: list[tuple[str, str]] = []
        self._bar: str | None = None
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "rect" and a.get("class"):
            self._bar = a["class"]

    def handle_data(self, data: str) -> None:
        if self._bar is not None:
            self.bars.append((self._bar, data))
            self._bar = None
        self.text.append(data)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _bars(page: _Page, cls: str) -> list[str]:
    return [tip for kind, tip in page.bars if kind == cls]


# ------------------------------------------------------------------ the report


def test_the_spanish_report_has_the_real_figures(day: InfraIndicator, tmp_path: Path) -> None:
    json_path, html_path = report.write_report(day, tmp_path, lang="es", trend=[])
    assert html_path.name == "indicador-infraestructura-2026-12-06.html"
    assert json_path.name == "indicador-infraestructura-2026-12-06.json"
    page = _page(html_path)
    text = " ".join(page.text)
    assert page.lang == "es"
    assert "Gestión del Servicio de la Infraestructura de Tecnología del ICETEX" in text
    assert "6 de diciembre de 2026" in text
    portal = next(s for s in day.services if s.service == "portal")
    assert portal.availability == pytest.approx(100 * (86400 - 1800) / 86400)
    assert f"{portal.availability:.3f} %" in text  # 97.917 %
    assert "30 min 00 s" in text
    assert f"{day.overall:.3f} %" in text
    for svc in ("portal", "cartera-db", "transferencia", "registros"):
        assert svc in text
    assert "No cumple la meta" in text
    assert "3 de 4 servicios cumplen" in text
    # the outage bars: one counted (portal), one inside the window (registros), the window
    (outage,) = _bars(page, "outage")
    assert outage.startswith("portal: 2026-12-06 10:00:00 .. 2026-12-06 10:30:00")
    (inside,) = _bars(page, "outage-window")
    assert inside.startswith("registros: 2026-12-06 22:00:00 .. 2026-12-06 22:10:00")
    assert len(_bars(page, "window")) == 1
    assert "CHG-77" in text
    assert "actualización del receptor" in text
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["overall_percent"] == pytest.approx(day.overall)
    assert data["services_met"] == 3
    by = {s["service"]: s for s in data["services"]}
    assert by["portal"]["down_s"] == pytest.approx(1800)
    assert by["registros"]["excluded_s"] == pytest.approx(25 * 60)
    assert by["registros"]["availability_percent"] == 100.0


def test_the_english_report_speaks_english(day: InfraIndicator, tmp_path: Path) -> None:
    _, html_path = report.write_report(day, tmp_path, lang="en", trend=[])
    assert html_path.name == "indicador-infraestructura-2026-12-06-en.html"
    page = _page(html_path)
    text = " ".join(page.text)
    assert page.lang == "en"
    assert "December 6, 2026" in text
    assert "Availability per service" in text
    assert "Below the target" in text
    assert "Disponibilidad por servicio" not in text
    assert "97.917 %" in text
    assert len(_bars(page, "outage")) == 1


def test_a_bad_language_raises_and_writes_nothing(day: InfraIndicator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="unknown language 'fr'"):
        report.write_report(day, out, lang="fr", trend=[])
    assert not out.exists()


def test_a_month_shows_time_without_data_and_time_to_come(model: Model, tmp_path: Path) -> None:
    month = _month(model)
    _, html_path = report.write_report(month, tmp_path, lang="es", trend=[])
    assert html_path.name == "indicador-infraestructura-2026-12.html"
    page = _page(html_path)
    text = " ".join(page.text)
    assert "diciembre de 2026" in text
    nodata = _bars(page, "nodata")
    assert len(nodata) == len(model.services)
    assert "2026-12-01 00:00:00 .. 2026-12-01 01:00:00" in nodata[0]
    assert len(_bars(page, "future")) == len(model.services)
    (outage,) = _bars(page, "outage")
    assert outage.startswith("transferencia: 2026-12-01 04:00:00 .. 2026-12-01 04:12:00")
    assert "measured from then on" in text  # the indicator's note
    assert "Disponibilidad diaria" in text


def test_the_trend_takes_the_newest_record_of_each_month(model: Model, tmp_path: Path) -> None:
    month = _month(model)
    records = [  # newest first, as the ledger lists them
        {"period": "2026-11", "overall_percent": 99.91},
        {"period": "2026-11", "overall_percent": 50.0},
        {"period": "2026-12", "overall_percent": 1.0},  # the indicator itself wins
        {"period": "2026-12-06", "overall_percent": 2.0},  # a day, not a month
        {"period": "2026-09", "overall_percent": 98.5},
        {"period": "2025-01", "overall_percent": 97.0},  # too old
    ]
    trend = report.monthly_trend(records, month, months=4)
    assert trend == [
        ("2026-09", 98.5),
        ("2026-10", None),
        ("2026-11", 99.91),
        ("2026-12", pytest.approx(month.overall)),
    ]
    _, html_path = report.write_report(month, tmp_path, lang="en", trend=trend)
    svg = re.search(r'<svg[^>]*class="trend".*?</svg>', html_path.read_text(), re.S)
    assert svg is not None
    for label in ("Sep 26", "Oct 26", "Nov 26", "Dec 26", "99.91", "98.50"):
        assert label in svg.group(0)
    data = json.loads(html_path.with_suffix(".json").read_text())
    assert [p["overall_percent"] for p in data["trend"]][:3] == [98.5, None, 99.91]


def test_a_recorded_indicator_is_restored_as_it_was(day: InfraIndicator) -> None:
    restored = report.from_record(json.loads(json.dumps(day.as_dict())))
    assert restored.as_dict() == day.as_dict()
    assert restored.overall == pytest.approx(day.overall)
    with pytest.raises(MonitoringError, match="not a recorded infrastructure indicator"):
        report.from_record({"period": "2026-12"})


def test_durations_read_as_people_say_them() -> None:
    assert report.duration(45) == "45 s"
    assert report.duration(1800) == "30 min 00 s"
    assert report.duration(7500) == "2 h 05 min"
    assert report.duration(30 * 86400) == "30 d 0 h"
    assert report.duration(-78) == "-1 min 18 s"
    assert report.duration(-0.3) == "0 s"  # an overrun under half a second is none


# ------------------------------------------------------------------ gestic indicators


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Ledger:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.delenv("GESTIC_LAB_NAME", raising=False)
    monkeypatch.delenv("GESTIC_ROBOTS_DIR", raising=False)
    monkeypatch.setattr(console, "_width", 250)  # rich read COLUMNS when it was made
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def _record(ledger: Ledger, details: dict[str, object]) -> int:
    with ledger.record(kind=service.INDICATOR_KIND, target="lab") as run:
        run.add_details(details)
    assert run.result is not None
    return run.result.id


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--inventory", str(LAB_INVENTORY), "indicators", *args])


def test_indicators_from_the_ledger_with_the_rpa_indicator(
    model: Model, env: Ledger, tmp_path: Path
) -> None:
    month = _month(model, "2025-11")
    stale = {**month.as_dict(), "overall_percent": 12.5}
    _record(env, {"period": "2025-10", "overall_percent": 99.25})
    _record(env, stale)
    newest = _record(env, month.as_dict())
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    WorkQueue(url).close()  # creates the queue's table
    seed, bot = Seeder(url), load_bot(ROOT / "robots" / "conciliacion-pagos")
    t = bogota(2025, 11, 10, 9, 0)
    sla = timedelta(minutes=bot.manifest.sla_minutes)
    for k in range(3):
        seed.add(
            bot, t + timedelta(hours=k), state=DONE, finished=t + timedelta(hours=k, minutes=1)
        )
    seed.add(bot, t, state=DONE, finished=t + sla + timedelta(minutes=5))  # late
    seed.add(bot, t, state=FAILED, finished=t, exc=BUSINESS, code="PAGO_MALFORMADO")
    out = tmp_path / "out"
    result = _invoke("--period", "2025-11", "--from-ledger", "--output", str(out))
    assert result.exit_code == 0, result.output
    output = result.output
    assert "Infraestructura" in output
    assert f"{month.overall:.3f} %" in output
    assert "12.500 %" not in output  # the older record of the month is not used
    assert f"ledger #{newest}" in output
    assert "transferencia (tier 2)" in output
    assert "3/4 items within SLA, 1 breaches, 1 business exceptions" in output
    assert "75.0%" in output
    assert (out / "indicador-infraestructura-2025-11.html").is_file()
    combined = json.loads((out / "indicadores-2025-11.json").read_text(encoding="utf-8"))
    assert combined["infraestructura"]["overall_percent"] == pytest.approx(month.overall)
    assert combined["infraestructura"]["source"] == f"ledger #{newest}"
    assert combined["rpa"]["overall"]["items_counted"] == 4
    assert combined["rpa"]["overall"]["value"] == pytest.approx(0.75)
    infra = json.loads((out / "indicador-infraestructura-2025-11.json").read_text())
    assert [p["overall_percent"] for p in infra["trend"]][-2:] == [99.25, month.overall]


def test_indicators_without_rpa_say_so(
    model: Model, env: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GESTIC_ROBOTS_DIR", str(tmp_path / "no-robots"))
    _record(env, _month(model, "2025-11").as_dict())
    result = _invoke("--period", "2025-11", "--from-ledger", "--output", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "not configured" in result.output
    combined = json.loads((tmp_path / "o" / "indicadores-2025-11.json").read_text())
    assert "robots directory not found" in combined["rpa"]["reason"]


def test_from_ledger_without_a_record_of_the_period_fails(env: Ledger, tmp_path: Path) -> None:
    result = _invoke("--period", "2025-11", "--from-ledger", "--output", str(tmp_path / "o"))
    assert result.exit_code != 0
    assert "no indicator.infra of 2025-11" in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_missing_monitoring_data_stops_and_writes_nothing(
    model: Model, env: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    period = parse_period("2025-03-10", BOGOTA)
    gap = (_local(2025, 3, 10, 14, 0), _local(2025, 3, 10, 14, 20))
    data = _server(model, period.start - timedelta(minutes=1), period.end, {}, skip=gap)
    monkeypatch.setattr(service, "apis", lambda ctx: [])
    monkeypatch.setattr(service, "read_servers", lambda *a: ([data], []))
    out = tmp_path / "out"
    result = _invoke("--period", "2025-03-10", "--output", str(out))
    assert result.exit_code != 0
    error = result.exception
    assert isinstance(error, MonitoringDataMissing)
    assert set(error.gaps) == set(model.services)
    assert "portal: 2025-03-10T19:00:00+00:00 .. 2025-03-10T19:20:00+00:00" in str(error)
    assert not out.exists()
    assert env.runs(kind=service.INDICATOR_KIND) == []


def test_indicators_computed_from_the_monitoring_are_recorded(
    model: Model, env: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    period = parse_period("2025-03-10", BOGOTA)
    data = _server(model, period.start - timedelta(minutes=1), period.end, {})
    monkeypatch.setattr(service, "apis", lambda ctx: [])
    monkeypatch.setattr(service, "read_servers", lambda *a: ([data], []))
    out = tmp_path / "out"
    result = _invoke("--period", "2025-03-10", "--lang", "en", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "a monthly indicator" in result.output
    (run,) = env.runs(kind=service.INDICATOR_KIND)
    assert run.details["period"] == "2025-03-10"
    assert run.details["overall_percent"] == 100.0
    assert (out / "indicador-infraestructura-2025-03-10-en.html").is_file()
    assert (out / "indicadores-2025-03-10.json").is_file()
    assert datetime.fromisoformat(run.details["computed_at"]) <= datetime.now(UTC)
