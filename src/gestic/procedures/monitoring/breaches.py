"""Breaches the ledger already knows about, as incidents: failed backup checks and restore
verifications, RTO/RPO breaches of drills, vulnerability tests under the threshold, RPA items
that missed their service level.

Each judged thing has a key (`check:<service>`, `site-loss:<service>:rto`, `host:<name>`...).
Walking its runs oldest first, the first failing judgement opens an incident and the first
passing one after it closes it, so an incident lasts from the failure until the run that found
the thing healthy again (what the service desk measures as time to repair). Judgements that
have not been repaired yet leave the incident open.

Only runs of the last `since` are read; an incident opened before that and still open is kept
open by `IncidentLog.record`, which merges sightings of the same source and key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from gestic.procedures.monitoring.incidents import Incident, IncidentLog, Source
from gestic.rpa.sla import Breach
from gestic.store.ledger import FINAL_STATUSES, SUCCEEDED, Ledger, RunRecord

#: Ledger kinds judged per service by their own status (target = the service).
BACKUP_KINDS: Final = {"backup.check": "check", "backup.verify": "verify"}
DRILL_KINDS: Final = ("drill", "drill.test")
VULNSCAN_KIND: Final = "vulnscan.report"
#: How many runs of one kind are read at most (newest first).
RUNS_READ: Final = 5000


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """What one run said about one thing: healthy or not, and in what words."""

    key: str
    ok: bool
    service: str | None = None
    host: str | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _final_runs(ledger: Ledger, kinds: Iterable[str], since: datetime | None) -> list[RunRecord]:
    """Finished runs of `kinds`, oldest first."""
    found = [
        run
        for kind in kinds
        for run in ledger.runs(kind=kind, limit=RUNS_READ)
        if run.status in FINAL_STATUSES and (since is None or run.started_at >= since)
    ]
    return sorted(found, key=lambda r: (r.started_at, r.id))


def _incidents(
    source: Source, judged: Iterable[tuple[RunRecord, Sequence[Judgement]]]
) -> Iterator[Incident]:
    """Open at the first failing judgement of a key, close at the next passing one."""
    opened: dict[str, tuple[RunRecord, Judgement]] = {}
    for run, judgements in judged:
        for j in judgements:
            if not j.ok and j.key not in opened:
                opened[j.key] = (run, j)
            elif j.ok and j.key in opened:
                first, failing = opened.pop(j.key)
                yield _incident(source, first, failing, ended_at=run.started_at, repaired_by=run)
    for first, failing in opened.values():
        yield _incident(source, first, failing, ended_at=None, repaired_by=None)


def _incident(
    source: Source,
    run: RunRecord,
    j: Judgement,
    *,
    ended_at: datetime | None,
    repaired_by: RunRecord | None,
) -> Incident:
    details: dict[str, Any] = {"run": run.id, "kind": run.kind, **j.details}
    if repaired_by is not None:
        details["repaired_by_run"] = repaired_by.id
    return Incident(
        source=source, key=j.key, started_at=run.started_at, ended_at=ended_at,
        service=j.service, host=j.host, summary=j.summary, details=details,
    )  # fmt: skip


def _backup_judgements(run: RunRecord) -> list[Judgement]:
    what = BACKUP_KINDS[run.kind]
    ok = run.status == SUCCEEDED
    label = "backup repository check" if what == "check" else "restore verification"
    summary = "" if ok else f"{label} of {run.target} failed: {run.summary}"
    host = run.details.get("host") if what == "verify" else None
    return [Judgement(key=f"{what}:{run.target}", ok=ok, service=run.target, host=host,
                      summary=summary)]  # fmt: skip


def _drill_judgements(run: RunRecord) -> list[Judgement]:
    """One judgement per service and objective (RTO, RPO) of a drill."""
    scenario = str(run.details.get("scenario") or run.target)
    test = " (test)" if run.details.get("test") else ""
    found = []
    for svc in run.details.get("services") or []:
        name = str(svc.get("service"))
        host = svc.get("host")
        for objective in ("rto", "rpo"):
            ok = bool(svc.get(f"{objective}_ok"))
            value = svc.get(f"{objective}_s")
            target = svc.get(f"{objective}_target_s")
            measured = "not measured" if value is None else f"{value:.1f} s"
            summary = (
                ""
                if ok
                else f"{objective.upper()} {measured} over the target {target} s in the "
                f"{scenario} drill{test}" + (f": {svc['error']}" if svc.get("error") else "")
            )
            found.append(
                Judgement(
                    key=f"{scenario}:{name}:{objective}", ok=ok, service=name, host=host,
                    summary=summary,
                    details={f"{objective}_s": value, f"{objective}_target_s": target},
                )
            )  # fmt: skip
    return found


def _vulnscan_judgements(run: RunRecord) -> list[Judgement]:
    threshold = run.details.get("threshold")
    found = []
    for host, state in sorted((run.details.get("hosts") or {}).items()):
        status = str(state.get("status"))
        index = state.get("hardening_index")
        ok = status == "passed"
        summary = (
            ""
            if ok
            else f"vulnerability test {status} on {host}: hardening index {index} "
            f"(minimum {threshold})"
        )
        found.append(
            Judgement(
                key=f"host:{host}", ok=ok, host=host, summary=summary,
                details={"hardening_index": index, "threshold": threshold},
            )
        )  # fmt: skip
    return found


def collect(ledger: Ledger, environment: str, *, since: datetime | None = None) -> list[Incident]:
    """Incidents from the backup, drill and vulnerability runs recorded in `ledger`.

    `environment` selects the vulnerability reports (recorded per environment); the other runs
    are recorded per service or scenario in the environment's own ledger.
    """
    backups = _final_runs(ledger, BACKUP_KINDS, since)
    drills = _final_runs(ledger, DRILL_KINDS, since)
    scans = [r for r in _final_runs(ledger, [VULNSCAN_KIND], since) if r.target == environment]
    return [
        *_incidents("backup", ((r, _backup_judgements(r)) for r in backups)),
        *_incidents("drill", ((r, _drill_judgements(r)) for r in drills)),
        *_incidents("vulnscan", ((r, _vulnscan_judgements(r)) for r in scans)),
    ]


def rpa_incidents(breaches: Iterable[Breach]) -> list[Incident]:
    """One incident per RPA item that missed its service level.

    Late: from its due time until it was done. Overdue: open from its due time. A technical
    failure: from the due time (or the failure, if earlier) and open, since the item will not
    be worked again by itself; a re-run is a new item, and the incident is closed by hand.
    """
    found = []
    for b in breaches:
        late = b.kind == "late" and b.finished_at is not None
        started = b.due_at
        if b.kind == "technical" and b.finished_at is not None:
            started = min(b.due_at, b.finished_at)
        what = {
            "late": "done late",
            "overdue": "still pending past its due time",
            "technical": f"failed: {b.code} {b.message}".strip(),
        }.get(b.kind, b.kind)
        found.append(
            Incident(
                source="rpa", key=f"item:{b.bot}:{b.item_id}", started_at=started,
                ended_at=b.finished_at if late else None,
                summary=f"{b.bot} item {b.item_id} {what} (due {b.due_at.isoformat()})",
                details={"bot": b.bot, "item_id": b.item_id, "breach": b.kind,
                         "attempts": b.attempts, "code": b.code},
            )
        )  # fmt: skip
    return found


def sync_breach_incidents(
    ledger: Ledger, log: IncidentLog, target: str, environment: str, *, since: datetime | None
) -> int:
    """Record the ledger's breaches as incidents of `target`; return how many changed."""
    return log.record_all(target, collect(ledger, environment, since=since))
