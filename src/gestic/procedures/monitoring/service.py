"""The monitoring procedures on one environment: read its monitoring servers, compute the
indicator, turn alerts into incidents, record maintenance windows.

The commands (`gestic indicators`, `gestic incidents`, `gestic maintenance`) and the demo call
these with a `Context`; everything the environment has (model, host access, ledger) comes from
it, so the lab and any other environment are measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gestic.environments.context import Context
from gestic.errors import UsageError
from gestic.model.schema import Monitoring, required
from gestic.procedures.monitoring import alerts
from gestic.procedures.monitoring.incidents import IncidentLog
from gestic.procedures.monitoring.indicator import (
    InfraIndicator,
    Period,
    Window,
    compute,
    model_windows,
    read_servers,
)
from gestic.procedures.monitoring.prometheus import PrometheusApi

MAINTENANCE_KIND: Final = "maintenance.window"
INDICATOR_KIND: Final = "indicator.infra"


def monitoring_of(ctx: Context) -> Monitoring:
    return required(
        ctx.model,
        ctx.model.monitoring,
        var="gestic_monitoring",
        need=f"add it to {ctx.inventory}/group_vars/all/monitoring.yml (see docs/monitoring.md)",
        error=UsageError,
    )


def apis(ctx: Context) -> list[PrometheusApi]:
    """The environment's Prometheus servers, the primary first (SSH access files written)."""
    mon = monitoring_of(ctx)
    ctx.access.write(ctx.model)
    return [PrometheusApi(server, ctx.access) for server in mon.servers]


def windows(ctx: Context) -> list[Window]:
    """Maintenance windows in force: the model's and those recorded in the ledger."""
    found = model_windows(monitoring_of(ctx).maintenance_windows)
    for run in ctx.ledger.runs(kind=MAINTENANCE_KIND, target=ctx.target, limit=10_000):
        d = run.details
        found.append(
            Window(
                start=datetime.fromisoformat(d["start"]),
                end=datetime.fromisoformat(d["end"]),
                services=tuple(d.get("services") or ()),
                reason=str(d.get("reason", "")),
                change=d.get("change"),
                origin=f"ledger #{run.id}",
            )
        )
    return sorted(found, key=lambda w: w.start)


def record_maintenance(
    ctx: Context,
    *,
    start: datetime,
    end: datetime,
    services: Sequence[str],
    reason: str,
    change: str | None,
) -> int:
    """Record an approved maintenance window (a change record's window) in the ledger."""
    if start.tzinfo is None or end.tzinfo is None:
        raise UsageError("give the window's times with their UTC offset (…T22:00:00-05:00)")
    if end <= start:
        raise UsageError(f"the window ends ({end.isoformat()}) before it starts")
    unknown = [s for s in services if s not in ctx.model.services]
    if unknown:
        raise UsageError(
            f"unknown service(s) {', '.join(unknown)} (services: "
            f"{', '.join(sorted(ctx.model.services))})"
        )
    details: dict[str, Any] = {
        "start": start.isoformat(), "end": end.isoformat(), "services": list(services),
        "reason": reason, "change": change,
    }  # fmt: skip
    with ctx.ledger.record(kind=MAINTENANCE_KIND, target=ctx.target, details=details) as run:
        run.changed = 1
        run.summary = (
            f"{', '.join(services) or 'every service'}: {start.isoformat()} .. {end.isoformat()}"
            f" ({reason})"
        )
    assert run.result is not None
    return run.result.id


def infra_indicator(
    ctx: Context,
    period: Period,
    *,
    now: datetime | None = None,
    record: bool = True,
    accept_gaps: bool = False,
) -> InfraIndicator:
    """Compute the indicator from the monitoring servers (and keep it in the ledger)."""
    mon = monitoring_of(ctx)
    now = now or datetime.now(UTC)
    data, notes = read_servers(
        apis(ctx), period.start.timestamp(), min(period.end, now).timestamp(),
        mon.scrape_interval_seconds,
    )  # fmt: skip
    result = compute(
        ctx.model, data, period, windows=windows(ctx), now=now, notes=notes,
        accept_gaps=accept_gaps,
    )  # fmt: skip
    if record:
        with ctx.ledger.record(kind=INDICATOR_KIND, target=ctx.target) as run:
            run.changed = 0
            overall = result.overall
            run.summary = (
                f"{period.label}: {overall:.3f} %" if overall is not None else
                f"{period.label}: nothing measured"
            )  # fmt: skip
            run.add_details(result.as_dict())
    return result


def sync_alert_incidents(
    ctx: Context, *, since: datetime | None = None, now: datetime | None = None
) -> tuple[int, list[str]]:
    """Record every alert the monitoring servers saw since `since` (default: 35 days) as an
    incident; return how many incidents were added or changed, and notes on unreachable
    servers."""
    mon = monitoring_of(ctx)
    now = now or datetime.now(UTC)
    since = since or now - timedelta(days=35)
    found, notes = alerts.collect(
        apis(ctx), since=since, until=now, interval=mon.scrape_interval_seconds
    )
    log = IncidentLog.beside(ctx.ledger)
    try:
        return log.record_all(ctx.target, found), notes
    finally:
        log.close()
