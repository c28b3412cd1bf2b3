"""Drill evidence: `dr/evidence/<date>-<scenario>/` with drill.json and a self-contained report.

The HTML report (Spanish by default, English with lang="en") has an inline SVG timeline per
wave and service, the table of target vs achieved RTO and RPO, the probes, the commit and who
ran the drill; no scripts and no external resources, so it can be archived or mailed as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gestic import reports
from gestic.procedures.dr.drill import DrillResult
from gestic.store.ledger import current_commit, current_user

TZ = ZoneInfo("America/Bogota")
LANGS = reports.LANGS


@dataclass(frozen=True, kw_only=True)
class Evidence:
    directory: Path
    record: Path
    report: Path


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def local(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, TZ).strftime("%Y-%m-%d %H:%M:%S %Z")


def timeline(result: DrillResult, text: Mapping[str, Any]) -> dict[str, Any]:
    """Bars (in seconds since the declaration) for the SVG: one row per wave and service."""
    t0 = result.declared_at
    end = max([result.finished_at - t0, 1.0])
    rows: list[dict[str, Any]] = []
    for wave in result.waves:
        rows.append(
            {
                "label": f"{text['wave']} {wave.name}",
                "kind": "wave",
                "segments": [
                    {"from": wave.started_at - t0, "to": wave.finished_at - t0, "cls": "wave"}
                ],
                "status": wave.status,
            }
        )
        for svc in result.services:
            if svc.wave != wave.name or svc.started_at is None:
                continue
            a = svc.started_at - t0
            b = a + (svc.restore_s or 0)
            c = b + (svc.start_s or 0)
            d = c + (svc.probe_s or 0)
            rows.append(
                {
                    "label": svc.service,
                    "kind": "service",
                    "segments": [
                        {"from": a, "to": b, "cls": "restore"},
                        {"from": b, "to": c, "cls": "start"},
                        {"from": c, "to": d, "cls": "probe"},
                    ],
                    "status": svc.status,
                }
            )
    width, left, row_h = 860, 170, 26
    scale = (width - left - 20) / end
    ticks = _ticks(end)
    return {
        "rows": rows,
        "width": width,
        "left": left,
        "row_h": row_h,
        "height": 40 + row_h * len(rows),
        "scale": scale,
        "ticks": ticks,
        "end": end,
    }


def _ticks(end: float) -> list[float]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if end / step <= 10:
            return [i * step for i in range(int(end // step) + 1)]
    return [0.0, end]


def write_evidence(
    result: DrillResult, root: Path, *, lang: str = "es", extra: dict[str, Any] | None = None
) -> Evidence:
    """Write drill.json and report.html (both languages' data; the report in `lang`)."""
    language = reports.check_lang(lang)
    stamp = datetime.fromtimestamp(result.declared_at, TZ).strftime("%Y-%m-%dT%H%M%S")
    suffix = "-test" if result.test else ""
    directory = root / f"{stamp}-{result.scenario}{suffix}"
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        **result.as_dict(),
        "commit": current_commit(),
        "user": current_user(),
        "generated_at": datetime.now(UTC).isoformat(),
        **(extra or {}),
    }
    record_file = reports.write_json(directory / "drill.json", record, default=str)
    text = reports.text("dr", language)
    report = reports.write_html(
        directory / f"report{reports.lang_suffix(language, '.')}.html",
        "dr/report.html.j2",
        filters={"duration": duration, "local": local},
        t=text,
        lang=language,
        r=result,
        record=record,
        tl=timeline(result, text),
    )
    return Evidence(directory=directory, record=record_file, report=report)
