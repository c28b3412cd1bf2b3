"""The infrastructure indicator on the session lab, from its real Prometheus servers.

Each test causes a short outage (or a monitoring gap) of a few scrape intervals and computes
the indicator over a window around it, so outages of other tests earlier in the session do
not count. Every change is put back before the test ends, even when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from gestic.environments.context import Context
from gestic.errors import MonitoringDataMissing
from gestic.procedures.monitoring.incidents import IncidentLog
from gestic.procedures.monitoring.indicator import InfraIndicator, Period
from gestic.procedures.monitoring.service import (
    apis,
    infra_indicator,
    monitoring_of,
    record_maintenance,
    sync_alert_incidents,
    windows,
)

from .labkit import Lab, on_host

PORTAL_HOST = "web-p1"
#: how many scrape intervals each outage lasts
OUTAGE_INTERVALS = 3


def _interval(ctx: Context) -> float:
    return float(monitoring_of(ctx).scrape_interval_seconds)


def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting until {what}")
        time.sleep(1)


def _portal_up(ctx: Context) -> bool:
    """Whether every monitoring server's latest probe of the portal succeeded."""
    query = f'gestic:service_up{{service="portal",host="{PORTAL_HOST}"}}'
    values = [r["value"][1] for api in apis(ctx) for r in api.instant(query, time.time())["result"]]
    return len(values) == len(monitoring_of(ctx).servers) and set(values) == {"1"}


def _settle(ctx: Context) -> None:
    """Wait until the newest samples are inside what the indicator measures (now - 2 I)."""
    time.sleep(3 * _interval(ctx))


def _around(start: datetime, end: datetime, margin: float) -> Period:
    return Period("test", start - timedelta(seconds=margin), end + timedelta(seconds=margin))


def _service(result: InfraIndicator, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in result.services if s.service == name)


def _window_in_force(ctx: Context) -> bool:
    now = datetime.now(UTC)
    return any(w.start <= now + timedelta(seconds=120) and w.end >= now for w in windows(ctx))


@contextmanager
def _stopped(ctx: Context, host: str, unit: str) -> Iterator[None]:
    on_host(ctx, host, f"systemctl stop {unit}")
    try:
        yield
    finally:
        on_host(ctx, host, f"systemctl start {unit}")


def _outage(ctx: Context) -> tuple[datetime, datetime]:
    """Stop the portal on web-p1 for OUTAGE_INTERVALS scrape intervals; when it was down."""
    _wait("the portal answers its probe", lambda: _portal_up(ctx), 60)
    with _stopped(ctx, PORTAL_HOST, "portal"):
        stopped = datetime.now(UTC)
        time.sleep(OUTAGE_INTERVALS * _interval(ctx))
    started = datetime.now(UTC)
    _wait("the portal answers its probe again", lambda: _portal_up(ctx), 60)
    _settle(ctx)
    return stopped, started


@pytest.fixture(scope="module")
def monitored(lab: Lab) -> Context:
    """The session lab once its monitoring servers have a few intervals of data."""
    ctx = lab.ctx
    ctx.access.write(ctx.model)
    _wait("the monitoring servers probe the portal", lambda: _portal_up(ctx), 120)
    _settle(ctx)
    return ctx


def test_portal_outage_costs_its_time_and_becomes_one_resolved_incident(
    monitored: Context,
) -> None:
    ctx, interval = monitored, _interval(monitored)
    stopped, started = _outage(ctx)
    down = (started - stopped).total_seconds()
    period = _around(stopped, started, 10 * interval)

    result = infra_indicator(ctx, period, record=False)

    portal = _service(result, "portal")
    tolerance = interval + 1.5  # one scrape at each edge, plus the time ssh takes
    assert abs(portal.down_s - down) <= tolerance, (portal.down_s, down)
    assert portal.availability is not None
    expected = 100 * (1 - down / portal.measured_s)
    assert abs(portal.availability - expected) <= 100 * tolerance / portal.measured_s
    assert [o.excluded for o in portal.outages] == [False]
    # the other services stayed up: at most one failed probe each (measured in CI with two
    # labs on two cores: one TCP probe of registros timed out, 5 s); never an outage
    others = {s.service: s.down_s for s in result.services if s.service != "portal"}
    assert all(down <= interval for down in others.values()), others

    since = stopped - timedelta(seconds=interval)
    added, notes = sync_alert_incidents(ctx, since=since)
    assert notes == []
    assert added >= 1
    again, _ = sync_alert_incidents(ctx, since=since)
    assert again == 0, "a second sync of the same alerts must change nothing"
    log = IncidentLog.beside(ctx.ledger)
    try:
        found = [
            r for r in log.list(target=ctx.target, source="alert")
            if r.service == "portal" and r.host == PORTAL_HOST and r.started_at >= since
            and r.key.startswith("GesticServiceDown")
        ]  # fmt: skip
    finally:
        log.close()
    assert len(found) == 1, found
    incident = found[0]
    assert not incident.open
    assert incident.ended_at is not None
    assert abs((incident.started_at - stopped).total_seconds()) <= 2 * interval + 1.5
    assert abs((incident.ended_at - started).total_seconds()) <= 2 * interval + 1.5


def test_an_outage_inside_a_recorded_maintenance_window_is_not_counted(
    monitored: Context,
) -> None:
    ctx, interval = monitored, _interval(monitored)
    # the period starts 5 intervals before the window: keep an earlier test's outage out of it
    time.sleep(3 * interval)
    opens = datetime.now(UTC)
    closes = opens + timedelta(seconds=(OUTAGE_INTERVALS + 8) * interval + 20)
    record_maintenance(
        ctx, start=opens, end=closes, services=["portal"],
        reason="lab test: portal restart", change="CHG-LAB-TEST",
    )  # fmt: skip
    _, started = _outage(ctx)
    assert started < closes, "the outage outlasted its window: lengthen the window"

    # from before the window opens, so some measured time stays in the period
    period = Period("test", opens - timedelta(seconds=5 * interval), closes)
    result = infra_indicator(ctx, period, record=False)

    portal = _service(result, "portal")
    assert portal.down_s == 0.0
    assert portal.excluded_s > 0
    assert [o.excluded for o in portal.outages] == [True]
    assert portal.up_s > 0
    assert portal.availability == 100.0


def test_without_prometheus_the_indicator_names_the_span_without_data(
    monitored: Context,
) -> None:
    ctx, interval = monitored, _interval(monitored)
    servers = monitoring_of(ctx).servers
    assert len(servers) >= 2, "the lab's model declares a monitoring server per site"

    def _all_ready() -> bool:
        return all(api.ready() for api in apis(ctx))

    # one server stopped: the other one measured the whole time
    first = datetime.now(UTC)
    with _stopped(ctx, servers[0], "prometheus"):
        time.sleep(OUTAGE_INTERVALS * interval)
    _wait("both Prometheus servers answer", _all_ready, 120)
    _settle(ctx)
    result = infra_indicator(ctx, _around(first, datetime.now(UTC), 0), record=False)
    assert all(s.down_s == 0.0 for s in result.services)

    # every server stopped: nobody measured that span, and the indicator says so (for every
    # service: a maintenance window in force would rightly leave its service out)
    _wait("no maintenance window is in force", lambda: not _window_in_force(ctx), 180)
    blackout = datetime.now(UTC)
    try:
        for server in servers:
            on_host(ctx, server, "systemctl stop prometheus")
        time.sleep(OUTAGE_INTERVALS * interval)
    finally:
        for server in servers:
            on_host(ctx, server, "systemctl start prometheus")
    restarted = datetime.now(UTC)
    _wait("both Prometheus servers answer", _all_ready, 120)
    _settle(ctx)
    period = _around(blackout, restarted, 5 * interval)
    with pytest.raises(MonitoringDataMissing) as caught:
        infra_indicator(ctx, period, record=False)
    gaps = caught.value.gaps
    assert set(gaps) == set(ctx.model.services), gaps
    for service, spans in gaps.items():
        assert len(spans) == 1, (service, spans)
        (a, b) = spans[0]
        assert isinstance(a, datetime)
        assert isinstance(b, datetime)
        # the gap is the blackout, seen from the samples on each side of it
        assert blackout - timedelta(seconds=2 * interval) <= a <= restarted
        assert b >= restarted - timedelta(seconds=2 * interval)
        assert service in str(caught.value)
    # accepted: computed over the measured time, the blackout left out and named
    accepted = infra_indicator(ctx, period, record=False, accept_gaps=True)
    blackout_s = (restarted - blackout).total_seconds()
    for svc in accepted.services:
        assert blackout_s - 3 * interval <= svc.unmeasured_s <= blackout_s + 3 * interval, svc
    assert len([n for n in accepted.notes if "without monitoring data" in n]) == len(gaps)


def test_prometheus_never_scraped_a_target_the_model_lacks(lab: Lab) -> None:
    """Packaged servers stay off until configured (the image): no sample, ever, of Debian's
    default targets (localhost:9090, localhost:9100), which raised a false HostDown before."""
    ctx = lab.ctx
    for api in apis(ctx):
        # every `up` series of the last day: only the model's addresses may appear
        found = api.instant("count by (instance) (count_over_time(up[1d]))", time.time())
        instances = sorted(item["metric"].get("instance", "") for item in found["result"])
        assert instances, f"{api.server}: Prometheus has no targets at all"
        # the role's own targets are 127.0.0.1:<port>; Debian's defaults say localhost
        strays = [i for i in instances if i.startswith("localhost")]
        assert strays == [], f"{api.server} scraped targets outside the model: {strays}"
