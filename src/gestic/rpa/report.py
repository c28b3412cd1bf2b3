"""The monthly *Nivel del servicio RPA* report: HTML (Spanish by default, or English) and JSON.

The HTML is self-contained (inline CSS and an inline SVG trend chart, no scripts), so it can
be mailed or archived as is; the JSON next to it carries the same figures for other tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gestic import reports
from gestic.model.rpa_schema import Rpa
from gestic.rpa.manifest import Bot
from gestic.rpa.queue import WorkQueue
from gestic.rpa.schedule import timezone
from gestic.rpa.sla import Indicator, Period, PeriodResult, measure


def month_name(period: Period, lang: reports.Lang) -> str:
    return reports.month_title(period.year, period.month, lang)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def trend_svg(points: list[tuple[str, float | None]], target: float | None) -> str:
    """An inline SVG line chart of monthly values (0-100 %), with the target as a dashed line."""
    width, height, left, right, top, bottom = 640, 240, 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{int(tick * 100)} %</text>"
        )
    if target is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(target):.1f}" x2="{width - right}" y2="{y(target):.1f}" '
            'stroke="#c0392b" stroke-dasharray="6 4"/>'
            f'<text x="{width - right}" y="{y(target) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#c0392b">{target * 100:.0f} %</text>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, (_, value) in enumerate(points):
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        parts.append(
            f'<polyline points="{" ".join(seg)}" fill="none" stroke="#1f4e79" stroke-width="2"/>'
        )
    for i, (label, value) in enumerate(points):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{label}</text>'
        )
        if value is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="4" fill="#1f4e79"/>'
                f'<text x="{x(i):.1f}" y="{y(value) - 8:.1f}" font-size="10" '
                f'text-anchor="middle">{value * 100:.0f}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, kw_only=True)
class ReportFiles:
    html: Path
    json: Path
    indicator: Indicator
    data: dict[str, Any]


def build_data(
    *,
    result: PeriodResult,
    trend: list[PeriodResult],
    bots: Mapping[str, Bot],
    settings: Rpa,
    environment: str,
    generated: datetime,
) -> dict[str, Any]:
    """The report's figures as JSON-ready data (the HTML is rendered from the same)."""
    causes: dict[tuple[str, str], int] = {}
    for b in result.breaches:
        key = (b.kind, b.code or "-")
        causes[key] = causes.get(key, 0) + 1
    return {
        "indicator": "Nivel del servicio RPA",
        "period": str(result.period),
        "environment": environment,
        "generated_at": generated.isoformat(),
        "timezone": settings.timezone,
        "target": settings.target,
        "overall": result.overall.as_dict(),
        "bots": {
            name: {
                **ind.as_dict(),
                "queue": bots[name].manifest.queue,
                "sla_minutes": bots[name].manifest.sla_minutes,
            }
            for name, ind in result.per_bot.items()
        },
        "trend": [{"period": str(t.period), "value": t.overall.value} for t in trend],
        "breaches": [b.as_dict() for b in result.breaches],
        "causes": [
            {"kind": kind, "code": code, "count": n}
            for (kind, code), n in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def write_report(
    *,
    queue: WorkQueue,
    bots: Mapping[str, Bot],
    settings: Rpa,
    period: Period,
    lang: str,
    out_dir: Path,
    months: int = 6,
    environment: str = "lab",
    now: datetime | None = None,
) -> ReportFiles:
    """Measure `period` (and the months before it for the trend) and write HTML and JSON."""
    language = reports.check_lang(lang)
    now = now or datetime.now(UTC)
    tz: ZoneInfo = timezone(settings.timezone)
    result = measure(queue, bots, period, tz=tz, target=settings.target, now=now)
    trend = [
        measure(queue, bots, period.shift(-k), tz=tz, target=settings.target, now=now)
        for k in range(max(months, 1) - 1, 0, -1)
    ] + [result]
    data = build_data(
        result=result,
        trend=trend,
        bots=bots,
        settings=settings,
        environment=environment,
        generated=now,
    )
    names = reports.month_names(language)
    short = [f"{names[r.period.month - 1][:3]} {r.period.year % 100:02d}" for r in trend]
    svg = trend_svg(
        [(label, r.overall.value) for label, r in zip(short, trend, strict=True)],
        settings.target,
    )
    filters = {
        "pct": _pct,
        "local": lambda iso: (
            "—"
            if not iso
            else datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"nivel-servicio-rpa-{period}{reports.lang_suffix(language)}"
    html_path = reports.write_html(
        out_dir / f"{stem}.html",
        "rpa/report.html.j2",
        trim=False,
        filters=filters,
        t=reports.text("rpa", language),
        lang=language,
        data=data,
        month=month_name(period, language),
        generated=now.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        svg=svg,
        bots=bots,
    )
    json_path = reports.write_json(out_dir / f"{stem}.json", data)
    return ReportFiles(html=html_path, json=json_path, indicator=result.overall, data=data)
