"""Drill evidence: `dr/evidence/<date>-<scenario>/` with drill.json and a self-contained report.

The HTML report (Spanish by default, English with lang="en") has an inline SVG timeline per
wave and service, the table of target vs achieved RTO and RPO, the probes, the commit and who
ran the drill; no scripts and no external resources, so it can be archived or mailed as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gestic import reports
from gestic.dr.drill import DrillResult
from gestic.ledger import current_commit, current_user

TZ = ZoneInfo("America/Bogota")
LANGS = reports.LANGS

TEXT: dict[str, dict[str, str]] = {
    "es": {
        "title": "Simulacro de recuperación de desastres",
        "subtitle": "Guía Plan de Recuperación de Desastres de TI — Dirección de Tecnología",
        "scenario": "Escenario",
        "site-loss": "Pérdida del sitio principal",
        "host-loss": "Pérdida de un servidor",
        "mode": "Modalidad",
        "test": "Prueba aislada (producción sin interrupción)",
        "real": "Conmutación real al sitio alterno",
        "lost": "Servidores perdidos",
        "declared": "Desastre declarado",
        "finished": "Fin del simulacro",
        "commit": "Versión (commit)",
        "user": "Ejecutado por",
        "result": "Resultado",
        "passed": "CUMPLE",
        "failed": "NO CUMPLE",
        "targets": "Objetivos frente a lo logrado",
        "service": "Servicio",
        "wave": "Ola",
        "host": "Servidor de recuperación",
        "rto_target": "RTO objetivo",
        "rto": "RTO logrado",
        "rpo_target": "RPO objetivo",
        "rpo": "RPO logrado",
        "status": "Estado",
        "timeline": "Línea de tiempo",
        "timeline_note": "Segundos desde la declaración del desastre.",
        "restore": "restauración",
        "start": "arranque",
        "probe_phase": "pruebas",
        "probes": "Pruebas de funcionamiento",
        "probe": "Prueba",
        "detail": "Detalle",
        "duration": "Duración",
        "snapshot": "Copia restaurada",
        "breaches": "Incumplimientos",
        "none": "Ninguno",
        "steps": "Confirmaciones manuales",
        "responsible": "Responsable",
        "approved": "Aprobada",
        "auto": "automática (simulacro)",
        "manual": "manual",
        "cleanup": "Limpieza verificada",
        "cleanup_ok": "Sin rastros del simulacro",
        "cleanup_pending": "Pendiente: ejecute gestic drill failback",
        "irreducible": "Tiempo irreducible",
        "ok": "correcto",
        "skipped": "no intentado",
        "yes": "sí",
        "no": "no",
        "plan": "Plan",
        "environment": "Ambiente",
        "generated": "Generado",
    },
    "en": {
        "title": "Disaster recovery drill",
        "subtitle": "IT Disaster Recovery Plan Guide — IT Directorate",
        "scenario": "Scenario",
        "site-loss": "Loss of the primary site",
        "host-loss": "Loss of one host",
        "mode": "Mode",
        "test": "Isolated test (production not interrupted)",
        "real": "Real failover to the DR site",
        "lost": "Lost hosts",
        "declared": "Disaster declared",
        "finished": "Drill finished",
        "commit": "Version (commit)",
        "user": "Run by",
        "result": "Result",
        "passed": "PASSED",
        "failed": "FAILED",
        "targets": "Targets vs achieved",
        "service": "Service",
        "wave": "Wave",
        "host": "Recovery host",
        "rto_target": "RTO target",
        "rto": "Achieved RTO",
        "rpo_target": "RPO target",
        "rpo": "Achieved RPO",
        "status": "Status",
        "timeline": "Timeline",
        "timeline_note": "Seconds since the disaster was declared.",
        "restore": "restore",
        "start": "start",
        "probe_phase": "probes",
        "probes": "Probes",
        "probe": "Probe",
        "detail": "Detail",
        "duration": "Duration",
        "snapshot": "Restored snapshot",
        "breaches": "Breaches",
        "none": "None",
        "steps": "Manual confirmations",
        "responsible": "Responsible",
        "approved": "Approved",
        "auto": "automatic (drill)",
        "manual": "manual",
        "cleanup": "Verified cleanup",
        "cleanup_ok": "Nothing of the drill left behind",
        "cleanup_pending": "Pending: run gestic drill failback",
        "irreducible": "Irreducible time",
        "ok": "ok",
        "skipped": "not attempted",
        "yes": "yes",
        "no": "no",
        "plan": "Plan",
        "environment": "Environment",
        "generated": "Generated",
    },
}


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


def timeline(result: DrillResult, text: dict[str, str]) -> dict[str, Any]:
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
    text = TEXT[language]
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
