"""Incident records (Procedimiento Gestión de Incidentes, Gestión de Problemas).

Every outage and breach gestic sees becomes one incident record in the ledger's database: an
alert of the monitoring that fired (and resolved), a failed backup check, an RTO/RPO breach of
a drill, an RPA service-level breach, a vulnerability scan under its threshold. A record says
what failed (service, host, summary), when it started and ended, and where it came from
(`source` and a `key` naming the failing thing within it, e.g. the alert and its labels).

Recording is idempotent: `record` matches an incident with the same environment, source and key
whose time overlaps (an alert seen again by the next sync, or by the other monitoring server),
and widens it instead of adding a second row, so a sync may run as often as anyone likes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    and_,
    insert,
    or_,
    select,
    update,
)

from gestic.errors import IncidentError
from gestic.store import db
from gestic.store.db import PortableText, UTCDateTime
from gestic.store.ledger import LEDGER_URL_ENV, Ledger, default_url

Source = Literal["alert", "backup", "drill", "rpa", "vulnscan"]
SOURCES: Final[tuple[Source, ...]] = ("alert", "backup", "drill", "rpa", "vulnscan")

metadata = MetaData()

incidents_table = Table(
    "gestic_incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(255), nullable=False),  # the environment (lab stack name)
    Column("source", String(16), nullable=False),
    Column("key", String(255), nullable=False),
    Column("service", String(64), nullable=True),
    Column("host", String(255), nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),  # None: still open
    Column("summary", PortableText, nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_gestic_incidents_match", "target", "source", "key", "started_at"),
    Index("ix_gestic_incidents_started", "started_at"),
)


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One outage or breach, as a source saw it (before it is recorded)."""

    source: Source
    key: str
    started_at: datetime
    ended_at: datetime | None = None
    service: str | None = None
    host: str | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise IncidentError(f"unknown incident source {self.source!r} (one of {SOURCES})")
        if self.started_at.tzinfo is None:
            raise IncidentError(f"incident {self.key}: started_at needs a time zone")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise IncidentError(f"incident {self.key}: ends before it starts")


@dataclass(frozen=True, kw_only=True)
class IncidentRecord:
    id: int
    target: str
    source: str
    key: str
    service: str | None
    host: str | None
    started_at: datetime
    ended_at: datetime | None
    summary: str
    details: dict[str, Any]
    recorded_at: datetime
    updated_at: datetime

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "source": self.source,
            "key": self.key,
            "service": self.service,
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": self.duration_s,
            "open": self.open,
            "summary": self.summary,
            "details": self.details,
        }


EXPORT_FIELDS: Final = (
    "id", "target", "source", "key", "service", "host", "started_at", "ended_at", "duration_s",
    "open", "summary",
)  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC)


def _row(row: Row[Any]) -> IncidentRecord:
    m = row._mapping
    return IncidentRecord(
        id=int(m["id"]),
        target=m["target"],
        source=m["source"],
        key=m["key"],
        service=m["service"],
        host=m["host"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        summary=m["summary"] or "",
        details=dict(m["details"] or {}),
        recorded_at=m["recorded_at"],
        updated_at=m["updated_at"],
    )


class IncidentLog:
    """The incident records behind one SQLAlchemy URL (the ledger's database by default)."""

    #: Two sightings of the same failure this close are one incident (clock skew between the
    #: two monitoring servers, a sync that saw the alert still pending).
    MERGE_SLACK: Final = timedelta(seconds=60)

    def __init__(self, url: str) -> None:
        self.display_url = db.masked(url)
        self._engine: Engine = db.make_engine(
            url, what="incident log", error=IncidentError, metadata=metadata, write_lock=True
        )

    @classmethod
    def from_env(cls) -> IncidentLog:
        return cls(os.environ.get(LEDGER_URL_ENV) or default_url())

    @classmethod
    def beside(cls, ledger: Ledger) -> IncidentLog:
        """The incident records in the same database as `ledger`."""
        return cls(ledger.url)

    def close(self) -> None:
        self._engine.dispose()

    def _guard(self, action: str) -> Any:
        return db.reraise(IncidentError, f"incident log at {self.display_url}: cannot {action}")

    def record(self, target: str, incident: Incident) -> tuple[int, bool]:
        """Record `incident` for `target` (merged into an overlapping one of the same source
        and key); return its id and whether anything was added or changed."""
        slack = self.MERGE_SLACK
        t = incidents_table
        inc = incident
        with self._guard(f"record incident {inc.key}"), self._engine.begin() as conn:
            overlapping = [
                t.c.target == target,
                t.c.source == inc.source,
                t.c.key == inc.key,
                or_(t.c.ended_at.is_(None), t.c.ended_at >= inc.started_at - slack),
            ]
            if inc.ended_at is not None:  # an open sighting overlaps everything after it
                overlapping.append(t.c.started_at <= inc.ended_at + slack)
            candidates = conn.execute(select(t).where(*overlapping)).all()
            if not candidates:
                now = _now()
                result = conn.execute(
                    insert(t).values(
                        target=target, source=inc.source, key=inc.key, service=inc.service,
                        host=inc.host, started_at=inc.started_at, ended_at=inc.ended_at,
                        summary=inc.summary, details=inc.details, recorded_at=now,
                        updated_at=now,
                    )
                )  # fmt: skip
                pk = result.inserted_primary_key
                assert pk is not None
                return int(pk[0]), True
            current = _row(min(candidates, key=lambda r: r._mapping["started_at"]))
            started = min(current.started_at, inc.started_at)
            # an open sighting keeps the incident open only if it is the latest word on it
            if inc.ended_at is None:
                ended = (
                    None
                    if current.ended_at is None or current.ended_at <= inc.started_at
                    else current.ended_at
                )
            elif current.ended_at is None:
                ended = inc.ended_at
            else:
                ended = max(current.ended_at, inc.ended_at)
            details = {**current.details, **inc.details}
            if (started, ended, details) == (current.started_at, current.ended_at,
                                             current.details):  # fmt: skip
                return current.id, False
            conn.execute(
                update(t).where(t.c.id == current.id).values(
                    started_at=started, ended_at=ended, details=details, updated_at=_now(),
                    summary=inc.summary or current.summary,
                )
            )  # fmt: skip
            return current.id, True

    def record_all(self, target: str, incidents: Iterable[Incident]) -> int:
        """Record every incident; return how many were added or changed."""
        return sum(self.record(target, inc)[1] for inc in incidents)

    def list(
        self,
        *,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        service: str | None = None,
        open_only: bool = False,
        limit: int | None = None,
    ) -> list[IncidentRecord]:
        """Incidents that overlap [since, until), newest first."""
        t = incidents_table
        query = select(t).order_by(t.c.started_at.desc(), t.c.id.desc())
        conditions = []
        if target is not None:
            conditions.append(t.c.target == target)
        if since is not None:
            conditions.append(or_(t.c.ended_at.is_(None), t.c.ended_at >= since))
        if until is not None:
            conditions.append(t.c.started_at < until)
        if source is not None:
            conditions.append(t.c.source == source)
        if service is not None:
            conditions.append(t.c.service == service)
        if open_only:
            conditions.append(t.c.ended_at.is_(None))
        if conditions:
            query = query.where(and_(*conditions))
        if limit is not None:
            query = query.limit(limit)
        with self._guard("list incidents"), self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).all()]

    def resolve(self, incident_id: int, *, when: datetime, by: str, note: str) -> IncidentRecord:
        """Close an open incident by hand (an RPA item failed for good, a host retired...)."""
        current = self.get(incident_id)
        if not current.open:
            raise IncidentError(f"incident {incident_id} is already closed (at {current.ended_at})")
        if when < current.started_at:
            raise IncidentError(f"incident {incident_id} started after {when.isoformat()}")
        t = incidents_table
        details = {**current.details, "resolved_by": by, "resolution": note}
        with self._guard(f"resolve incident {incident_id}"), self._engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.id == incident_id, t.c.ended_at.is_(None)).values(
                    ended_at=when, details=details, updated_at=_now()
                )
            )  # fmt: skip
        return self.get(incident_id)

    def get(self, incident_id: int) -> IncidentRecord:
        t = incidents_table
        with self._guard(f"read incident {incident_id}"), self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == incident_id)).first()
        if row is None:
            raise IncidentError(f"no incident {incident_id} in {self.display_url}")
        return _row(row)


def mttr_by_month(records: Sequence[IncidentRecord], zone: Any) -> dict[str, float]:
    """Mean time to repair (seconds) of the resolved incidents, by the month (YYYY-MM, in
    `zone`) in which they started."""
    sums: dict[str, list[float]] = {}
    for rec in records:
        if rec.duration_s is None:
            continue
        month = rec.started_at.astimezone(zone).strftime("%Y-%m")
        sums.setdefault(month, []).append(rec.duration_s)
    return {m: sum(v) / len(v) for m, v in sorted(sums.items())}


@dataclass(frozen=True, kw_only=True)
class Recurring:
    """The same failure (source and key) recorded again and again: a candidate problem
    (Procedimiento Gestión de Problemas) for its root cause to be found."""

    source: str
    key: str
    service: str | None
    host: str | None
    count: int
    first: datetime
    last: datetime
    down_s: float  # summed duration of the resolved ones
    open: int


def recurring(records: Sequence[IncidentRecord], *, min_count: int) -> list[Recurring]:
    """Failures recorded at least `min_count` times among `records`, the most frequent first."""
    groups: dict[tuple[str, str], list[IncidentRecord]] = {}
    for rec in records:
        groups.setdefault((rec.source, rec.key), []).append(rec)
    found = [
        Recurring(
            source=source,
            key=key,
            service=group[0].service,
            host=group[0].host,
            count=len(group),
            first=min(r.started_at for r in group),
            last=max(r.started_at for r in group),
            down_s=sum(r.duration_s or 0.0 for r in group),
            open=sum(1 for r in group if r.open),
        )
        for (source, key), group in groups.items()
        if len(group) >= min_count
    ]
    return sorted(found, key=lambda r: (-r.count, -r.down_s, r.key))


def export(records: Sequence[IncidentRecord], fmt: Literal["csv", "json"]) -> str:
    """The records as CSV (one row each, the service desk's columns) or a JSON list."""
    if fmt == "json":
        return json.dumps([r.as_dict() for r in records], indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for rec in records:
        writer.writerow(rec.as_dict())
    return out.getvalue()
