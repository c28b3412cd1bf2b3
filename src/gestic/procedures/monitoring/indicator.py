"""The indicator *Gestión del Servicio de la Infraestructura de Tecnología del ICETEX*.

For a period (a month or a day in the institution's time zone), per service and overall:
availability = time the service answered its probe / time measured, where approved maintenance
windows (declared in the model, or recorded with `gestic maintenance record`) are left out, set
against the target of the service's tier, with the error budget that is left.

Every figure comes from the monitoring servers' raw samples of `gestic:service_up` (Prometheus
recording rule: 1 while a service answers on a host, 0 while it does not). The first server
with data at a time decides; a service is up while any of its hosts answers. Time without data
on every server is never counted as up: the computation refuses, naming the gaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gestic.errors import MonitoringDataMissing, MonitoringError, UsageError
from gestic.model import Model
from gestic.model.schema import MaintenanceWindow, Monitoring, required
from gestic.procedures.monitoring import timeline as tl
from gestic.procedures.monitoring.prometheus import PrometheusApi, Series

SERVICE_METRIC = "gestic:service_up"
SELF_METRIC = 'up{job="prometheus"}'


@dataclass(frozen=True)
class Period:
    label: str  # YYYY-MM or YYYY-MM-DD
    start: datetime  # aware
    end: datetime  # aware; the end of the month/day, even if in the future

    @property
    def is_month(self) -> bool:
        return len(self.label) == 7


def parse_period(text: str, zone: ZoneInfo) -> Period:
    """'2026-12' (a month) or '2026-12-06' (a day), in `zone`."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}", text):
        year, month = (int(p) for p in text.split("-"))
        if not 1 <= month <= 12:
            raise UsageError(f"--period {text}: no month {month}")
        start = datetime(year, month, 1, tzinfo=zone)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
        return Period(text, start, end)
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise UsageError(f"--period {text}: {exc}") from None
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        return Period(text, start, (start + timedelta(days=1)).replace(tzinfo=zone))
    raise UsageError(f"--period {text!r}: expected a month YYYY-MM or a day YYYY-MM-DD")


def current_month(zone: ZoneInfo, now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(zone).strftime("%Y-%m")


@dataclass(frozen=True)
class Window:
    """A maintenance window in force for the indicator (from the model or the ledger)."""

    start: datetime
    end: datetime
    services: tuple[str, ...]
    reason: str
    change: str | None
    origin: str  # "model" or "ledger #<run id>"

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "services": list(self.services), "reason": self.reason, "change": self.change,
            "origin": self.origin,
        }  # fmt: skip


def model_windows(windows: Iterable[MaintenanceWindow]) -> list[Window]:
    return [Window(w.start, w.end, w.services, w.reason, w.change, "model") for w in windows]


@dataclass(frozen=True)
class Outage:
    start: datetime
    end: datetime
    excluded: bool  # inside an approved maintenance window

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "seconds": round(self.seconds, 1), "excluded": self.excluded}  # fmt: skip


@dataclass(frozen=True)
class ServiceAvailability:
    service: str
    description: str
    tier: int
    target: float  # percent
    up_s: float
    down_s: float
    excluded_s: float  # time inside maintenance windows (not counted)
    outages: tuple[Outage, ...]
    unmeasured_s: float = 0.0  # time without data, accepted by the operator (not counted)

    @property
    def measured_s(self) -> float:
        return self.up_s + self.down_s

    @property
    def availability(self) -> float | None:
        """Percent of the measured time the service was up (None: nothing measured)."""
        return 100 * self.up_s / self.measured_s if self.measured_s else None

    @property
    def budget_s(self) -> float:
        """Downtime the target allows over the measured time."""
        return self.measured_s * (100 - self.target) / 100

    @property
    def budget_left_s(self) -> float:
        return self.budget_s - self.down_s

    @property
    def met(self) -> bool:
        return self.availability is None or self.availability >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service, "description": self.description, "tier": self.tier,
            "target_percent": self.target, "availability_percent": self.availability,
            "met": self.met, "up_s": round(self.up_s, 1), "down_s": round(self.down_s, 1),
            "excluded_s": round(self.excluded_s, 1), "measured_s": round(self.measured_s, 1),
            "unmeasured_s": round(self.unmeasured_s, 1),
            "budget_s": round(self.budget_s, 1), "budget_left_s": round(self.budget_left_s, 1),
            "outages": [o.as_dict() for o in self.outages],
        }  # fmt: skip


@dataclass(frozen=True)
class InfraIndicator:
    environment: str
    period: Period
    timezone: str
    measured_from: datetime
    measured_to: datetime
    computed_at: datetime
    servers: tuple[str, ...]  # the monitoring servers whose data were read
    interval_s: int
    services: tuple[ServiceAvailability, ...]
    daily: tuple[tuple[str, float | None], ...]  # (YYYY-MM-DD, overall percent)
    windows: tuple[Window, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def overall(self) -> float | None:
        measured = sum(s.measured_s for s in self.services)
        return 100 * sum(s.up_s for s in self.services) / measured if measured else None

    @property
    def met(self) -> bool:
        return all(s.met for s in self.services)

    def as_dict(self) -> dict[str, Any]:
        return {
            "indicator": "infraestructura",
            "environment": self.environment,
            "period": self.period.label,
            "timezone": self.timezone,
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "measured_from": self.measured_from.isoformat(),
            "measured_to": self.measured_to.isoformat(),
            "computed_at": self.computed_at.isoformat(),
            "servers": list(self.servers),
            "scrape_interval_s": self.interval_s,
            "overall_percent": self.overall,
            "met": self.met,
            "services": [s.as_dict() for s in self.services],
            "daily": [{"day": d, "overall_percent": p} for d, p in self.daily],
            "maintenance_windows": [w.as_dict() for w in self.windows],
            "notes": list(self.notes),
        }


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _series_by(series: Series, label: str) -> dict[str, list[Series]]:
    grouped: dict[str, list[Series]] = {}
    for labels, points in series.items():
        value = dict(labels).get(label)
        if value is not None:
            grouped.setdefault(value, []).append({labels: points})
    return grouped


@dataclass(frozen=True)
class ServerData:
    """What one monitoring server holds for a period."""

    server: str
    service_up: Series  # gestic:service_up by (service, host)
    self_up: Series  # up{job="prometheus"}: the server's own life


def read_servers(
    apis: Sequence[PrometheusApi], start: float, end: float, interval: float
) -> tuple[list[ServerData], list[str]]:
    """Raw samples of every reachable server; the notes name the servers that did not answer."""
    data, notes = [], []
    for api in apis:
        try:
            data.append(
                ServerData(
                    api.server,
                    api.raw(SERVICE_METRIC, start - 2 * interval, end),
                    api.raw(SELF_METRIC, start - 2 * interval, end),
                )
            )
        except MonitoringError as exc:
            notes.append(str(exc))
    return data, notes


def compute(
    model: Model,
    data: Sequence[ServerData],
    period: Period,
    *,
    windows: Sequence[Window] = (),
    now: datetime | None = None,
    notes: Sequence[str] = (),
    accept_gaps: bool = False,
) -> InfraIndicator:
    """The indicator over `period` from the servers' data (primary first).

    Time that no server has data for is never counted as up: the computation refuses, naming
    the gaps, unless `accept_gaps` (the operator's explicit choice), when that time is left
    out of the measured time of the service and said in the notes.
    """
    mon = _monitoring(model)
    now = now or datetime.now(UTC)
    interval = float(mon.scrape_interval_seconds)
    if not data:
        raise MonitoringError(
            "no monitoring server answered: " + ("; ".join(notes) or "none is declared")
        )
    start = _ts(period.start)
    # the newest scrape may be up to two intervals old: a period that is still running is
    # measured up to then, not up to this second
    end = min(_ts(period.end), _ts(now) - 2 * interval)
    # Measuring starts with the first probe sample: a server that runs before its probes do
    # (the first converge installs Prometheus before the services) has not started measuring.
    # A probe that starts later than the others is a gap, like a probe that stops.
    born = [pts[0][0] for d in data for pts in d.service_up.values() if pts]
    if not born or min(born) >= end:
        raise MonitoringDataMissing(
            f"no monitoring data in {period.label}: the monitoring servers "
            f"({', '.join(d.server for d in data)}) have no probe sample before "
            f"{_dt(end).isoformat()}",
            {"*": [(period.start, _dt(end))]},
        )
    measured_from = max(start, min(born))
    out_notes = list(notes)
    if measured_from > start + interval:
        out_notes.append(
            f"the monitoring's first probe sample is {_dt(measured_from).isoformat()}: the "
            "period is measured from then on (nothing before it is counted)"
        )
    services: list[ServiceAvailability] = []
    gaps: dict[str, list[tuple[object, object]]] = {}
    service_lines: dict[str, tl.Timeline] = {}
    per_server = [_series_by(d.service_up, "service") for d in data]
    for svc in model.services.values():
        by_server: list[tl.Timeline] = []
        for grouped in per_server:
            host_lines = [
                tl.from_samples(points, interval=interval, start=measured_from, end=end)
                for s in grouped.get(svc.name, [])
                for labels, points in s.items()
                if dict(labels).get("host") in svc.hosts
            ]
            by_server.append(
                tl.combine(host_lines, "any")
                if host_lines else [tl.Span(measured_from, end, tl.NODATA)]
            )  # fmt: skip
        line = tl.combine(by_server, "fill")
        holes = [(_ts(w.start), _ts(w.end)) for w in windows if w.covers(svc.name)]
        outside, inside = tl.cut(line, holes)
        missing = tl.runs(outside, tl.NODATA)
        if missing:
            gaps[svc.name] = [(_dt(a), _dt(b)) for a, b in missing]
        service_lines[svc.name] = outside
        outages = [Outage(_dt(a), _dt(b), False) for a, b in tl.runs(outside, tl.DOWN)]
        outages += [Outage(_dt(a), _dt(b), True) for a, b in tl.runs(inside, tl.DOWN)]
        services.append(
            ServiceAvailability(
                service=svc.name,
                description=svc.description,
                tier=svc.tier,
                target=mon.targets[svc.tier],
                up_s=tl.seconds_in(outside, tl.UP),
                down_s=tl.seconds_in(outside, tl.DOWN),
                excluded_s=sum(s.seconds for s in inside),
                outages=tuple(sorted(outages, key=lambda o: o.start)),
                unmeasured_s=sum(b - a for a, b in missing),
            )
        )
    if gaps and not accept_gaps:
        raise MonitoringDataMissing(_gap_message(period, gaps, data), gaps)
    for svc_avail in services:
        if svc_avail.unmeasured_s:
            out_notes.append(
                f"{svc_avail.service}: {svc_avail.unmeasured_s:.0f} s in "
                f"{len(gaps[svc_avail.service])} spans without monitoring data, accepted "
                "(--accept-gaps): counted neither as up nor as down"
            )
    return InfraIndicator(
        environment=model.environment,
        period=period,
        timezone=mon.timezone,
        measured_from=_dt(measured_from),
        measured_to=_dt(end),
        computed_at=now,
        servers=tuple(d.server for d in data),
        interval_s=mon.scrape_interval_seconds,
        services=tuple(services),
        daily=_daily(service_lines, period, mon.zone, measured_from, end),
        windows=tuple(w for w in windows if w.end > period.start and w.start < period.end),
        notes=tuple(out_notes),
    )


def _gap_message(
    period: Period, gaps: Mapping[str, list[tuple[object, object]]], data: Sequence[ServerData]
) -> str:
    lines = [
        f"the monitoring data do not cover {period.label}: no server "
        f"({', '.join(d.server for d in data)}) has samples for these spans, which are not "
        "counted as up; the indicator is not computed (`--accept-gaps` computes it over the "
        "measured time only and names the gaps in the report):"
    ]
    for service, spans in sorted(gaps.items()):
        for a, b in spans:
            assert isinstance(a, datetime)
            assert isinstance(b, datetime)
            lines.append(
                f"  {service}: {a.isoformat(timespec='seconds')} .. "
                f"{b.isoformat(timespec='seconds')} ({(b - a).total_seconds():.0f} s)"
            )
    return "\n".join(lines)


def _daily(
    lines: Mapping[str, tl.Timeline], period: Period, zone: ZoneInfo, start: float, end: float
) -> tuple[tuple[str, float | None], ...]:
    days: list[tuple[str, float | None]] = []
    day = period.start
    while day < period.end:
        following = (day + timedelta(days=1)).replace(tzinfo=zone)
        lo, hi = max(_ts(day), start), min(_ts(following), end)
        percent: float | None = None
        if hi > lo:
            up = down = 0.0
            for line in lines.values():
                part = tl.clip(line, lo, hi)
                up += tl.seconds_in(part, tl.UP)
                down += tl.seconds_in(part, tl.DOWN)
            percent = 100 * up / (up + down) if up + down else None
        days.append((day.strftime("%Y-%m-%d"), percent))
        day = following
    return tuple(days)


def _monitoring(model: Model) -> Monitoring:
    return required(
        model,
        model.monitoring,
        var="gestic_monitoring",
        need="the infrastructure indicator needs it (monitoring.yml, docs/monitoring.md)",
        error=UsageError,
    )
