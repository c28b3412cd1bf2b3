"""`gestic incidents`: every outage and breach as an incident record (Gestión de Incidentes).

`sync` turns what gestic saw into records: the alerts of the monitoring servers, failed backup
checks and restore verifications, RTO/RPO breaches of drills, vulnerability tests under the
threshold and RPA items that missed their service level. `list`, `show` and `export` (CSV or
JSON for the service desk) read them; `list` ends with the mean time to repair per month.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from gestic.cli.rpa_context import rpa_setup
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError, UsageError
from gestic.procedures.monitoring import breaches, incidents, report
from gestic.procedures.monitoring.incidents import SOURCES, Incident, IncidentLog, IncidentRecord
from gestic.procedures.monitoring.service import sync_alert_incidents
from gestic.rpa.schedule import timezone
from gestic.rpa.sla import Period as RpaPeriod
from gestic.rpa.sla import measure
from gestic.store.ledger import current_user

DEFAULT_ZONE = "America/Bogota"


def _zone(ctx: Context) -> ZoneInfo:
    mon = ctx.model.monitoring
    return mon.zone if mon is not None else ZoneInfo(DEFAULT_ZONE)


def _since(value: str | None, days: int) -> datetime:
    if value is None:
        return datetime.now(UTC) - timedelta(days=days)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since {value!r}: expected an ISO date or time (2026-12-01)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _duration(seconds: float | None) -> str:
    """An incident's duration as the reports write it ("open" while it lasts)."""
    return "open" if seconds is None else report.duration(seconds)


def _rpa_breach_incidents(
    ctx: Context, since: datetime, now: datetime
) -> tuple[list[Incident], str]:
    """Incidents of the RPA items that missed their SLA, in the months since `since`."""
    setup = rpa_setup(ctx)
    if isinstance(setup, str):
        return [], f"RPA: not configured ({setup})"
    if not setup.bots:
        return [], ""
    settings = setup.settings
    tz = timezone(settings.timezone)
    month = RpaPeriod.parse(now.astimezone(tz).strftime("%Y-%m"))
    first = RpaPeriod.parse(since.astimezone(tz).strftime("%Y-%m"))
    found: list[Incident] = []
    with setup.open_queue() as queue:
        while True:
            result = measure(queue, setup.bots, month, tz=tz, target=settings.target, now=now)
            found += breaches.rpa_incidents(result.breaches)
            if (month.year, month.month) <= (first.year, first.month):
                break
            month = month.shift(-1)
    return found, ""


@click.group(name="incidents")
def COMMAND() -> None:
    """Incident records of every outage and breach; MTTR per month."""


@COMMAND.command(name="sync")
@click.option("--since", default=None, help="Look back to this date (default: 35 days ago).")
@click.pass_obj
def sync(obj: Context, since: str | None) -> None:
    """Record the monitoring's alerts and the ledger's breaches as incidents (idempotent)."""
    start = _since(since, 35)
    now = datetime.now(UTC)
    notes: list[str] = []
    alerts = 0
    if obj.model.monitoring is None:
        notes.append("alerts: this environment declares no monitoring")
    else:
        alerts, unreachable = sync_alert_incidents(obj, since=start, now=now)
        notes += [f"alerts: {n}" for n in unreachable]
    rpa_found, why = _rpa_breach_incidents(obj, start, now)
    if why:
        notes.append(why)
    log = IncidentLog.beside(obj.ledger)
    try:
        others = breaches.sync_breach_incidents(
            obj.ledger, log, obj.target, obj.model.environment, since=start
        )
        rpa_changed = log.record_all(obj.target, rpa_found)
        still_open = len(log.list(target=obj.target, open_only=True))
    finally:
        log.close()
    for note in notes:
        console.print(f"[yellow]note[/] {note}", soft_wrap=True)
    console.print(
        f"incidents since {start.date()}: {alerts} from alerts, {others} from backups, drills "
        f"and vulnerability tests, {rpa_changed} from RPA added or changed; {still_open} open"
    )


def _records(obj: Context, **filters: Any) -> list[IncidentRecord]:
    log = IncidentLog.beside(obj.ledger)
    try:
        return log.list(target=obj.target, **filters)
    finally:
        log.close()


@COMMAND.command(name="list")
@click.option("--source", type=click.Choice(SOURCES), default=None)
@click.option("--service", default=None, help="Only this service of the model.")
@click.option("--open", "open_only", is_flag=True, help="Only the incidents still open.")
@click.option("--since", default=None, help="Overlapping this date or later (default: 90 days).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_obj
def list_cmd(
    obj: Context, source: str | None, service: str | None, open_only: bool, since: str | None,
    limit: int,
) -> None:  # fmt: skip
    """The incidents, newest first, and the mean time to repair per month."""
    if service is not None and service not in obj.model.services:
        raise UsageError(
            f"--service {service!r}: not a service of {obj.model.environment} "
            f"({', '.join(sorted(obj.model.services))})"
        )
    zone = _zone(obj)
    records = _records(
        obj, since=_since(since, 90), source=source, service=service, open_only=open_only
    )
    table = Table(title=f"incidents of {obj.target} ({len(records)})")
    for col in ("id", "source", "service", "host", "started", "duration", "summary"):
        table.add_column(col)
    for r in records[:limit]:
        table.add_row(
            str(r.id), r.source, r.service or "-", r.host or "-",
            r.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.duration_s), r.summary,
        )  # fmt: skip
    console.print(table)
    if len(records) > limit:
        console.print(f"({len(records) - limit} older not shown: --limit)")
    mttr = incidents.mttr_by_month(records, zone)
    for month, seconds in mttr.items():
        resolved = sum(
            1 for r in records
            if not r.open and r.started_at.astimezone(zone).strftime("%Y-%m") == month
        )  # fmt: skip
        console.print(f"MTTR {month}: {_duration(seconds)} over {resolved} resolved incidents")


@COMMAND.command(name="show")
@click.argument("incident_id", type=int)
@click.pass_obj
def show(obj: Context, incident_id: int) -> None:
    """One incident with everything recorded about it."""
    log = IncidentLog.beside(obj.ledger)
    try:
        record = log.get(incident_id)
    finally:
        log.close()
    zone = _zone(obj)
    for name, value in record.as_dict().items():
        if name == "details":
            continue
        shown = value
        if name in ("started_at", "ended_at") and value is not None:
            shown = f"{value} ({datetime.fromisoformat(value).astimezone(zone).isoformat()})"
        console.print(f"{name:>11}: {shown}", markup=False, soft_wrap=True)
    for name, value in sorted(record.details.items()):
        console.print(f"{'':>11}  {name}: {value}", markup=False, soft_wrap=True)


@COMMAND.command(name="resolve")
@click.argument("incident_id", type=int)
@click.option("--note", required=True, help="How it was resolved (kept with the incident).")
@click.pass_obj
def resolve(obj: Context, incident_id: int, note: str) -> None:
    """Close an open incident by hand (e.g. an RPA item that failed and was re-done)."""
    log = IncidentLog.beside(obj.ledger)
    try:
        record = log.resolve(incident_id, when=datetime.now(UTC), by=current_user(), note=note)
    finally:
        log.close()
    console.print(f"resolved incident {record.id} after {_duration(record.duration_s)}")


@COMMAND.command(name="problems")
@click.option("--min-count", default=3, show_default=True, type=click.IntRange(2, 1000),
              help="Times the same failure must recur.")  # fmt: skip
@click.option("--since", default=None, help="Overlapping this date or later (default: 90 days).")
@click.pass_obj
def problems(obj: Context, min_count: int, since: str | None) -> None:
    """Failures that keep recurring: candidate problems (Gestión de Problemas)."""
    zone = _zone(obj)
    found = incidents.recurring(_records(obj, since=_since(since, 90)), min_count=min_count)
    table = Table(title=f"recurring failures of {obj.target} (>= {min_count} incidents)")
    for col in ("source", "key", "service", "host", "incidents", "open", "down", "first", "last"):
        table.add_column(col)
    for r in found:
        table.add_row(
            r.source, r.key, r.service or "-", r.host or "-", str(r.count), str(r.open),
            _duration(r.down_s), r.first.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            r.last.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    console.print(table)
    if not found:
        console.print(f"no failure recurred {min_count} times or more")


@COMMAND.command(name="export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
@click.option("--since", default=None, help="Overlapping this date or later (default: 90 days).")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write here instead of standard output.",
)  # fmt: skip
@click.pass_obj
def export(obj: Context, fmt: str, since: str | None, output: Path | None) -> None:
    """Export the incidents as CSV or JSON for the institution's service desk."""
    text = incidents.export(_records(obj, since=_since(since, 90)),
                            cast(Literal["csv", "json"], fmt))  # fmt: skip
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        raise GesticError(f"cannot write {output}: {exc}") from exc
    console.print(f"wrote {output}")
