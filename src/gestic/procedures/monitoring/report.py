"""The report of the indicator *Gestión del Servicio de la Infraestructura de Tecnología del
ICETEX* for management: HTML (Spanish by default, or English) and JSON.

Self-contained like gestic's other reports: inline CSS and inline SVG (a timeline of each
service's outages over the period, the daily and the monthly trend), no scripts. The module
takes data and queries nothing: the indicator (computed, or restored from its ledger record
with `from_record`) and the monthly trend (built by `monthly_trend` from earlier
"indicator.infra" records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gestic import reports
from gestic.errors import MonitoringError, UsageError
from gestic.procedures.monitoring.indicator import (
    InfraIndicator,
    Outage,
    Period,
    ServiceAvailability,
    Window,
)

NAME = "Gestión del Servicio de la Infraestructura de Tecnología del ICETEX"

#: (YYYY-MM, overall availability in percent; None: not computed that month)
TrendPoint = tuple[str, float | None]

#: The timeline's kinds of bar, in the legend's order.
LEGEND = ("up", "outage", "window", "outage-window", "nodata", "future")


# ------------------------------------------------------------------ figures


def overall_target(indicator: InfraIndicator) -> float | None:
    """The services' targets weighted by measured time, as the overall figure weights them."""
    measured = sum(s.measured_s for s in indicator.services)
    if not measured:
        return None
    return sum(s.target * s.measured_s for s in indicator.services) / measured


def _month_of(label: str) -> tuple[int, int]:
    year, month = label[:7].split("-")
    return int(year), int(month)


def _shift(year: int, month: int, months: int) -> str:
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def monthly_trend(
    records: Iterable[Mapping[str, Any]], indicator: InfraIndicator, months: int = 6
) -> list[TrendPoint]:
    """The overall availability of the `months` months up to the indicator's, oldest first.

    `records` are the details of earlier "indicator.infra" ledger runs, newest first: the
    first one of a month gives its figure. The indicator's own month (when it is a month)
    takes the indicator's figure.
    """
    year, month = _month_of(indicator.period.label)
    labels = [_shift(year, month, -k) for k in range(max(months, 1) - 1, -1, -1)]
    found: dict[str, float | None] = {}
    for details in records:
        label = details.get("period")
        if isinstance(label, str) and label in labels and label not in found:
            value = details.get("overall_percent")
            found[label] = float(value) if isinstance(value, int | float) else None
    if indicator.period.is_month:
        found[indicator.period.label] = indicator.overall
    return [(label, found.get(label)) for label in labels]


def from_record(details: Mapping[str, Any]) -> InfraIndicator:
    """The indicator as `InfraIndicator.as_dict` recorded it (the ledger's details)."""

    def when(value: Any) -> datetime:
        return datetime.fromisoformat(str(value))

    try:
        period = Period(
            str(details["period"]), when(details["period_start"]), when(details["period_end"])
        )
        services = tuple(
            ServiceAvailability(
                service=str(s["service"]),
                description=str(s.get("description", "")),
                tier=int(s["tier"]),
                target=float(s["target_percent"]),
                up_s=float(s["up_s"]),
                down_s=float(s["down_s"]),
                excluded_s=float(s["excluded_s"]),
                unmeasured_s=float(s.get("unmeasured_s", 0.0)),
                outages=tuple(
                    Outage(when(o["start"]), when(o["end"]), bool(o["excluded"]))
                    for o in s["outages"]
                ),
            )
            for s in details["services"]
        )
        windows = tuple(
            Window(
                start=when(w["start"]),
                end=when(w["end"]),
                services=tuple(w.get("services") or ()),
                reason=str(w.get("reason", "")),
                change=w.get("change"),
                origin=str(w.get("origin", "")),
            )
            for w in details.get("maintenance_windows", [])
        )
        return InfraIndicator(
            environment=str(details["environment"]),
            period=period,
            timezone=str(details["timezone"]),
            measured_from=when(details["measured_from"]),
            measured_to=when(details["measured_to"]),
            computed_at=when(details["computed_at"]),
            servers=tuple(details.get("servers", ())),
            interval_s=int(details["scrape_interval_s"]),
            services=services,
            daily=tuple((str(d["day"]), d["overall_percent"]) for d in details["daily"]),
            windows=windows,
            notes=tuple(str(n) for n in details.get("notes", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MonitoringError(f"not a recorded infrastructure indicator: {exc!r}") from None


def build_data(indicator: InfraIndicator, trend: Sequence[TrendPoint]) -> dict[str, Any]:
    """The report's figures as JSON-ready data (the HTML is rendered from the same)."""
    return {
        "title": NAME,
        **indicator.as_dict(),
        "overall_target_percent": overall_target(indicator),
        "services_met": sum(1 for s in indicator.services if s.met),
        "trend": [{"period": label, "overall_percent": value} for label, value in trend],
    }


# ------------------------------------------------------------------ words and numbers


def percent(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f} %"


def target(value: float | None) -> str:
    return "—" if value is None else f"{round(value, 3):g} %"


def duration(seconds: float | None) -> str:
    """A span for people: 45 s, 3 min 05 s, 2 h 07 min, 30 d 0 h (a sign when negative)."""
    if seconds is None:
        return "—"
    s = round(abs(seconds))
    sign = "-" if seconds < 0 and s else ""  # never "-0 s"
    if s < 60:
        text = f"{s} s"
    elif s < 3600:
        text = f"{s // 60} min {s % 60:02d} s"
    elif s < 86400:
        text = f"{s // 3600} h {s % 3600 // 60:02d} min"
    else:
        text = f"{s // 86400} d {s % 86400 // 3600} h"
    return sign + text


def period_title(period: Period, lang: reports.Lang) -> str:
    """ "diciembre de 2026" / "December 2026"; a day: "6 de diciembre de 2026" / "December 6,
    2026"."""
    year, month = _month_of(period.label)
    if period.is_month:
        return reports.month_title(year, month, lang)
    return reports.day_title(year, month, int(period.label[8:10]), lang)


# ------------------------------------------------------------------ charts


def _ticks(period: Period, zone: ZoneInfo) -> list[tuple[datetime, str | None]]:
    """Axis ticks in local time: days (some labelled) for a month, hours for a day."""
    start, end = period.start.astimezone(zone), period.end.astimezone(zone)
    ticks: list[tuple[datetime, str | None]] = []
    if end - start > timedelta(days=2):
        day = start
        while day <= end:
            labelled = day.day in (1, 5, 10, 15, 20, 25) and day < end
            ticks.append((day, f"{day.day}" if labelled else None))
            day = (day + timedelta(days=1)).replace(tzinfo=zone)
    else:
        hour = start
        while hour <= end:
            ticks.append((hour, f"{hour:%H}:00" if hour.hour % 3 == 0 and hour < end else None))
            hour = (hour + timedelta(hours=1)).replace(tzinfo=zone)
    return ticks


def timeline_svg(indicator: InfraIndicator, text: Mapping[str, str]) -> tuple[str, set[str]]:
    """An inline SVG with one lane per service over the period, and the legend entries used.

    Red: counted outages; grey: approved maintenance windows (darker: an outage inside one);
    hatched: no monitoring data (before the monitoring's first sample); pale: time not yet
    elapsed. Each bar's tooltip says when and how long.
    """
    zone = ZoneInfo(indicator.timezone)
    width, left, right, top, lane, gap = 860, 150, 16, 10, 22, 10
    plot = width - left - right
    t0, t1 = indicator.period.start.timestamp(), indicator.period.end.timestamp()
    height = top + len(indicator.services) * (lane + gap) + 24

    def x(when: datetime) -> float:
        ts = min(max(when.timestamp(), t0), t1)
        return left + plot * (ts - t0) / (t1 - t0)

    def local(when: datetime) -> str:
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    used = {"up"}

    def bar(cls: str, a: datetime, b: datetime, y: float, tip: str, min_w: float = 0) -> str:
        xa, xb = x(a), x(b)
        w = max(xb - xa, min_w)
        return (
            f'<rect class="{cls}" x="{xa:.1f}" y="{y:.1f}" width="{w:.1f}" height="{lane}">'
            f"<title>{escape(tip)}</title></rect>"
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="timeline">',
        '<defs><pattern id="nodata" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="3"/></pattern></defs>',
        "<style>.up{fill:#cfe8d5}.outage{fill:#c0392b}.window{fill:#b8b8b8}"
        ".outage-window{fill:#6d6d6d}.nodata{fill:url(#nodata)}.future{fill:#f4f4f4}"
        "text{font-family:sans-serif;font-size:11px}</style>",
    ]
    axis_y = top + len(indicator.services) * (lane + gap)
    for when, label in _ticks(indicator.period, zone):
        xt = x(when)
        parts.append(
            f'<line x1="{xt:.1f}" y1="{top}" x2="{xt:.1f}" y2="{axis_y:.1f}" stroke="#e3e3e3"/>'
        )
        if label is not None:
            parts.append(
                f'<text x="{xt:.1f}" y="{axis_y + 14:.1f}" text-anchor="middle">{label}</text>'
            )
    start, end = indicator.period.start, indicator.period.end
    measured_from, measured_to = indicator.measured_from, indicator.measured_to
    # measured up to the newest scrape, which may be two intervals old: no pale bar for that
    recent = timedelta(seconds=2 * indicator.interval_s + 1)
    for i, svc in enumerate(indicator.services):
        y = top + i * (lane + gap)
        name = escape(svc.service)
        parts.append(
            f'<text x="{left - 8}" y="{y + lane / 2 + 4:.1f}" text-anchor="end">{name}</text>'
        )
        parts.append(bar("up", measured_from, measured_to, y, svc.service))
        if measured_from > start:
            used.add("nodata")
            tip = (
                f"{svc.service}: {text['legend_nodata']} ({local(start)} .. {local(measured_from)})"
            )
            parts.append(bar("nodata", start, measured_from, y, tip))
        if measured_to < end - recent:
            used.add("future")
            tip = f"{svc.service}: {text['legend_future']} (> {local(measured_to)})"
            parts.append(bar("future", measured_to, end, y, tip))
        for w in indicator.windows:
            if w.covers(svc.service):
                used.add("window")
                tip = f"{svc.service}: {w.reason} ({local(w.start)} .. {local(w.end)})"
                parts.append(bar("window", w.start, w.end, y, tip, 1.0))
        for o in svc.outages:
            cls = "outage-window" if o.excluded else "outage"
            used.add(cls)
            tip = f"{svc.service}: {local(o.start)} .. {local(o.end)} ({duration(o.seconds)})"
            parts.append(bar(cls, o.start, o.end, y, tip, 2.0))
    parts.append("</svg>")
    return "".join(parts), used


def _floor(lowest: float) -> float:
    """The bottom of a percent chart: a round value a little under the lowest point."""
    for candidate in (99.9, 99.5, 99.0, 98.0, 95.0, 90.0, 80.0, 50.0):
        if candidate < lowest - 0.05 * (100 - lowest):
            return candidate
    return 0.0


def trend_svg(
    points: Sequence[tuple[str, float | None]],
    goal: float | None,
    *,
    width: int = 640,
    values: bool = True,
    css_class: str = "trend",
) -> str:
    """An inline SVG line chart of availabilities (percent), the target as a dashed line.

    The scale starts a little under the lowest point (availabilities sit near 100 %)."""
    height, left, right, top, bottom = 220, 56, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    known = [v for _, v in points if v is not None] + ([goal] if goal is not None else [])
    lo = _floor(min(known)) if known else 99.0
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / n

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (100 - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="{css_class}">'
    ]
    for k in range(5):
        tick = lo + (100 - lo) * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{round(tick, 3):g} %</text>"
        )
    if goal is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(goal):.1f}" x2="{width - right}" y2="{y(goal):.1f}" '
            'stroke="#c0392b" stroke-dasharray="6 4"/>'
            f'<text x="{width - right}" y="{y(goal) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#c0392b">{round(goal, 3):g} %</text>'
        )
    segments: list[list[str]] = [[]]
    for i, (_, value) in enumerate(points):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(f"{x(i):.1f},{y(value):.1f}")
    for seg in segments:
        if len(seg) > 1:
            parts.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="#1f4e79" '
                'stroke-width="2"/>'
            )
    every = max(1, len(points) // 12)
    for i, (label, value) in enumerate(points):
        if i % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="11" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
        if value is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="#1f4e79">'
                f"<title>{escape(label)}: {value:.3f} %</title></circle>"
            )
            if values:
                parts.append(
                    f'<text x="{x(i):.1f}" y="{y(value) - 8:.1f}" font-size="10" '
                    f'text-anchor="middle">{value:.2f}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------ the report


def render_html(
    indicator: InfraIndicator,
    *,
    lang: str,
    trend: Sequence[TrendPoint],
    generated: datetime | None = None,
) -> str:
    """The report as one self-contained HTML page in `lang` (UsageError for another)."""
    language = reports.check_lang(lang, UsageError)
    text = reports.text("monitoring", language)
    zone = ZoneInfo(indicator.timezone)
    data = build_data(indicator, trend)
    names = reports.month_names(language)
    monthly = [
        (f"{names[month - 1][:3]} {year % 100:02d}", value)
        for (year, month), value in ((_month_of(label), value) for label, value in trend)
    ]
    daily = [(day[8:10], value) for day, value in indicator.daily]
    timeline, used = timeline_svg(indicator, text)

    def local(iso: str | None) -> str:
        if not iso:
            return "—"
        return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return reports.render(
        "monitoring/indicator.html.j2",
        trim=False,
        filters={"pct": percent, "target": target, "dur": duration, "local": local},
        t=text,
        lang=language,
        data=data,
        month=period_title(indicator.period, language),
        generated=(generated or datetime.now(UTC)).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        timeline=timeline,
        legend=[k for k in LEGEND if k in used],
        timeline_note=text["timeline_note"].format(zone=indicator.timezone),
        daily_svg=trend_svg(
            daily, data["overall_target_percent"], width=860, values=False, css_class="daily"
        )
        if indicator.period.is_month
        else "",
        trend_svg=trend_svg(monthly, data["overall_target_percent"]),
    )


def write_report(
    indicator: InfraIndicator,
    out_dir: Path,
    *,
    lang: str,
    trend: Sequence[TrendPoint],
    generated: datetime | None = None,
) -> tuple[Path, Path]:
    """Write `indicador-infraestructura-<period>[-en].json` and `.html` into `out_dir`."""
    # rendered first: a bad language raises before anything is written
    html = render_html(indicator, lang=lang, trend=trend, generated=generated)
    language = reports.check_lang(lang, UsageError)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"indicador-infraestructura-{indicator.period.label}{reports.lang_suffix(language)}"
    json_path = reports.write_json(out_dir / f"{stem}.json", build_data(indicator, trend))
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path
