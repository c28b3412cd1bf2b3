"""The infrastructure indicator: samples into timelines, gaps refused, maintenance excluded,
two servers merged, and the model's monitoring section checked."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gestic.errors import ModelError, MonitoringDataMissing, UsageError
from gestic.model import Model, load_model
from gestic.procedures.monitoring import timeline as tl
from gestic.procedures.monitoring.indicator import (
    InfraIndicator,
    Period,
    ServerData,
    Window,
    compute,
    parse_period,
)
from gestic.procedures.monitoring.prometheus import Series, labels_of

from ....paths import LAB_INVENTORY

BOGOTA = ZoneInfo("America/Bogota")
STEP = 5.0  # the lab's scrape interval


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(LAB_INVENTORY, routes=[])


def _samples(start: float, end: float, value: float = 1.0) -> list[tuple[float, float]]:
    out, t = [], start
    while t < end:
        out.append((t, value))
        t += STEP
    return out


# ------------------------------------------------------------------ timelines


def test_a_steady_series_is_up_for_the_whole_span() -> None:
    line = tl.from_samples(_samples(0, 100), interval=STEP, start=0, end=100)
    assert line == [tl.Span(0, 100, tl.UP)]


def test_an_outage_lasts_as_long_as_its_down_samples() -> None:
    points = _samples(0, 40) + _samples(40, 60, 0.0) + _samples(60, 100)
    line = tl.from_samples(points, interval=STEP, start=0, end=100)
    assert tl.seconds_in(line, tl.DOWN) == pytest.approx(20)
    assert tl.runs(line, tl.DOWN) == [(40, 60)]


def test_a_gap_longer_than_two_intervals_has_no_data() -> None:
    points = _samples(0, 30) + _samples(60, 100)
    line = tl.from_samples(points, interval=STEP, start=0, end=100)
    # the last sample before the gap (t=25) stands for one interval; then nothing until 60
    assert tl.runs(line, tl.NODATA) == [(30, 60)]
    assert tl.seconds_in(line, tl.UP) == pytest.approx(70)


def test_one_late_scrape_is_not_a_gap() -> None:
    points = [p for p in _samples(0, 100) if p[0] != 50]
    line = tl.from_samples(points, interval=STEP, start=0, end=100)
    assert tl.runs(line, tl.NODATA) == []


def test_fill_takes_the_second_server_where_the_first_has_nothing() -> None:
    first = [tl.Span(0, 40, tl.UP), tl.Span(40, 70, tl.NODATA), tl.Span(70, 100, tl.UP)]
    second = [tl.Span(0, 50, tl.UP), tl.Span(50, 60, tl.DOWN), tl.Span(60, 100, tl.UP)]
    merged = tl.combine([first, second], "fill")
    assert merged == [tl.Span(0, 50, tl.UP), tl.Span(50, 60, tl.DOWN), tl.Span(60, 100, tl.UP)]


def test_any_host_up_keeps_the_service_up() -> None:
    a = [tl.Span(0, 50, tl.DOWN), tl.Span(50, 100, tl.UP)]
    b = [tl.Span(0, 30, tl.UP), tl.Span(30, 100, tl.DOWN)]
    assert tl.combine([a, b], "any") == [
        tl.Span(0, 30, tl.UP),
        tl.Span(30, 50, tl.DOWN),
        tl.Span(50, 100, tl.UP),
    ]


def test_cut_separates_maintenance_windows() -> None:
    line = [tl.Span(0, 100, tl.UP)]
    outside, inside = tl.cut(line, [(20, 30), (60, 80)])
    assert tl.seconds_in(outside, tl.UP) == 70
    assert [(s.start, s.end) for s in inside] == [(20, 30), (60, 80)]


# ------------------------------------------------------------------ periods


def test_periods_are_months_or_days_in_the_zone() -> None:
    month = parse_period("2026-12", BOGOTA)
    assert month.start == datetime(2026, 12, 1, tzinfo=BOGOTA)
    assert month.end == datetime(2027, 1, 1, tzinfo=BOGOTA)
    day = parse_period("2026-12-06", BOGOTA)
    assert (day.end - day.start) == timedelta(days=1)
    assert day.start.astimezone(UTC).hour == 5  # Bogotá is UTC-5
    for bad in ("2026-13", "2026-02-30", "december"):
        with pytest.raises(UsageError):
            parse_period(bad, BOGOTA)


# ------------------------------------------------------------------ the indicator

START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _period(minutes: int = 10) -> Period:
    return Period("2026-12-06", START, START + timedelta(minutes=minutes))


def _server(
    model: Model, name: str, start: float, end: float, down: dict[str, tuple[float, float]]
) -> ServerData:
    service_up: Series = {}
    for svc in model.services.values():
        for host in svc.hosts:
            points = []
            for t, _ in _samples(start, end):
                lo, hi = down.get(svc.name, (0.0, 0.0))
                points.append((t, 0.0 if lo <= t < hi else 1.0))
            service_up[labels_of({"service": svc.name, "host": host})] = points
    self_up: Series = {labels_of({"job": "prometheus"}): _samples(start, end)}
    return ServerData(name, service_up, self_up)


def _compute(
    model: Model, servers: list[ServerData], windows: tuple[Window, ...] = ()
) -> InfraIndicator:
    period = _period()
    return compute(model, servers, period, windows=windows, now=period.end + timedelta(minutes=1))


def test_an_outage_lowers_the_service_and_the_overall_figure(model: Model) -> None:
    t0 = START.timestamp()
    server = _server(model, "svc-p1", t0 - 10, t0 + 700, {"portal": (t0 + 60, t0 + 120)})
    result = _compute(model, [server])
    by = {s.service: s for s in result.services}
    portal = by["portal"]
    assert portal.down_s == pytest.approx(60)
    assert portal.availability == pytest.approx(90.0)
    assert not portal.met
    assert portal.budget_left_s < 0
    assert [o.seconds for o in portal.outages] == [pytest.approx(60)]
    assert by["cartera-db"].availability == 100.0
    assert result.overall == pytest.approx(100 * (2400 - 60) / 2400)


def test_an_outage_inside_a_maintenance_window_is_not_counted(model: Model) -> None:
    t0 = START.timestamp()
    server = _server(model, "svc-p1", t0 - 10, t0 + 700, {"portal": (t0 + 60, t0 + 120)})
    window = Window(
        START + timedelta(seconds=50), START + timedelta(seconds=130), ("portal",),
        "cambio de versión", "CHG-1", "model",
    )  # fmt: skip
    result = _compute(model, [server], windows=(window,))
    portal = next(s for s in result.services if s.service == "portal")
    assert portal.availability == 100.0
    assert portal.excluded_s == pytest.approx(80)
    assert [o.excluded for o in portal.outages] == [True]


def test_missing_data_is_refused_with_the_gap_named(model: Model) -> None:
    t0 = START.timestamp()
    before = _server(model, "svc-p1", t0 - 10, t0 + 200, {})
    after = _server(model, "svc-p1", t0 + 300, t0 + 700, {})
    joined = ServerData(
        "svc-p1",
        {k: before.service_up[k] + after.service_up[k] for k in before.service_up},
        {k: before.self_up[k] + after.self_up[k] for k in before.self_up},
    )
    with pytest.raises(MonitoringDataMissing) as info:
        _compute(model, [joined])
    assert set(info.value.gaps) == set(model.services)
    ((gap_start, gap_end),) = info.value.gaps["portal"]
    assert gap_start == START + timedelta(seconds=200)
    assert gap_end == START + timedelta(seconds=300)
    assert "portal" in str(info.value)
    assert "not counted as up" in str(info.value)
    assert "--accept-gaps" in str(info.value)
    # accepted by the operator: measured without the gap, which the notes name
    period = _period()
    accepted = compute(
        model, [joined], period, now=period.end + timedelta(minutes=1), accept_gaps=True
    )
    portal = next(s for s in accepted.services if s.service == "portal")
    assert portal.unmeasured_s == 100
    assert portal.down_s == 0
    assert portal.up_s == pytest.approx(portal.measured_s)
    assert any(n.startswith("portal: 100 s in 1 spans without monitoring data") for n in
               accepted.notes)  # fmt: skip


def test_the_dr_server_covers_what_the_primary_missed(model: Model) -> None:
    t0 = START.timestamp()
    primary = _server(model, "svc-p1", t0 + 300, t0 + 700, {})
    primary.self_up[labels_of({"job": "prometheus"})][:0] = _samples(t0 - 10, t0 + 100)
    dr = _server(model, "bkp-a1", t0 - 10, t0 + 700, {"portal": (t0 + 150, t0 + 180)})
    result = _compute(model, [primary, dr])
    portal = next(s for s in result.services if s.service == "portal")
    assert portal.down_s == pytest.approx(30)
    assert result.servers == ("svc-p1", "bkp-a1")


def test_a_monitoring_born_inside_the_period_measures_from_its_first_sample(
    model: Model,
) -> None:
    t0 = START.timestamp()
    server = _server(model, "svc-p1", t0 + 120, t0 + 700, {})
    result = _compute(model, [server])
    assert result.measured_from == START + timedelta(seconds=120)
    assert any("measured from then on" in n for n in result.notes)
    # Prometheus itself up before its probes (a first converge): measured from the probes
    early = ServerData(
        "svc-p1", server.service_up, {labels_of({"job": "prometheus"}): _samples(t0, t0 + 700)}
    )
    assert _compute(model, [early]).measured_from == START + timedelta(seconds=120)


# ------------------------------------------------------------------ the model


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, root)
    return root


def test_monitoring_section_problems_name_file_and_key(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    mon = root / "group_vars" / "all" / "monitoring.yml"
    mon.write_text(
        mon.read_text()
        .replace("servers: [svc-p1, bkp-a1]", "servers: [svc-p1, nohost]")
        .replace("    2: 99.0\n", "")
        .replace("timezone: America/Bogota", "timezone: Mars/Olympus")
    )
    with pytest.raises(ModelError) as info:
        load_model(root, routes=[])
    text = "\n".join(info.value.problems)
    assert "monitoring.yml" in text
    assert "unknown time zone 'Mars/Olympus'" in text


def test_a_service_without_a_probe_and_an_unknown_server_are_reported(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    svc = root / "group_vars" / "all" / "services.yml"
    svc.write_text(svc.read_text().replace("    probe: {kind: tcp, port: 6514}\n", ""))
    mon = root / "group_vars" / "all" / "monitoring.yml"
    mon.write_text(mon.read_text().replace("servers: [svc-p1, bkp-a1]", "servers: [svc-p1, x1]"))
    with pytest.raises(ModelError) as info:
        load_model(root, routes=[])
    text = "\n".join(info.value.problems)
    assert "gestic_services.registros" in text
    assert "no `probe`" in text
    assert "unknown host 'x1'" in text


def test_a_window_without_offset_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    mon = root / "group_vars" / "all" / "monitoring.yml"
    mon.write_text(
        mon.read_text().replace(
            "maintenance_windows: []",
            "maintenance_windows:\n    - {start: '2026-12-05T22:00:00',"
            " end: '2026-12-06T01:00:00-05:00', reason: x}",
        )
    )
    with pytest.raises(ModelError) as info:
        load_model(root, routes=[])
    assert "UTC offset" in "\n".join(info.value.problems)
