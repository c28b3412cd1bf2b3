"""The monitoring's alerts as incidents: every alert that fired, from when to when.

Prometheus keeps the state of its alerts as the series `ALERTS{alertstate="firing"}` (one
sample per rule evaluation while an alert fires). Its raw samples give each firing's start and
end exactly; both monitoring servers are read, and the incident log merges what both saw.
An alert whose last sample is recent is still firing: its incident stays open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from gestic.errors import MonitoringError
from gestic.procedures.monitoring.incidents import Incident
from gestic.procedures.monitoring.prometheus import PrometheusApi, Series

FIRING = 'ALERTS{alertstate="firing"}'
#: labels that only say which rule or server: not part of what failed
_NOISE = {"alertstate", "__name__", "gestic_server", "severity"}


def _key(labels: dict[str, str]) -> str:
    name = labels.get("alertname", "?")
    rest = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _NOISE | {"alertname"}]
    return "/".join([name, *rest])


def firings(series: Series, *, interval: float, now: float) -> Iterable[Incident]:
    """One incident per run of consecutive firing samples (gaps over 2 intervals split)."""
    for labels_t, points in series.items():
        labels = dict(labels_t)
        runs: list[list[float]] = []
        for t, _ in points:
            if runs and t - runs[-1][-1] <= 2 * interval:
                runs[-1].append(t)
            else:
                runs.append([t])
        for run in runs:
            still = now - run[-1] <= 2 * interval
            service, host = labels.get("service"), labels.get("host")
            what = labels.get("alertname", "?")
            yield Incident(
                source="alert",
                key=_key(labels),
                service=service,
                host=host,
                started_at=datetime.fromtimestamp(run[0], UTC),
                # the alert stopped firing within one evaluation after its last sample
                ended_at=None if still else datetime.fromtimestamp(run[-1] + interval, UTC),
                summary=f"{what}: " + ", ".join(
                    f"{k}={v}" for k, v in sorted(labels.items()) if k in ("service", "host", "job")
                ),
                details={"labels": {k: v for k, v in labels.items() if k != "__name__"}},
            )  # fmt: skip


def collect(
    apis: Sequence[PrometheusApi], *, since: datetime, until: datetime, interval: float
) -> tuple[list[Incident], list[str]]:
    """The alerts every reachable server saw in [since, until); notes for the others."""
    found: list[Incident] = []
    notes: list[str] = []
    now = until.timestamp()
    for api in apis:
        try:
            series = api.raw(FIRING, since.timestamp(), now)
        except MonitoringError as exc:
            notes.append(str(exc))
            continue
        found.extend(firings(series, interval=interval, now=now))
    return sorted(found, key=lambda i: i.started_at), notes
