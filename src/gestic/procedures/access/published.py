"""Access reports published for the bots (table `gestic_access_reports` in the RPA database).

`gestic access report` runs on the controller, which reaches every host over SSH; the bots
hosts run the scheduler but have no SSH access to the other hosts. So the controller publishes
each report it collects into the database the controller and the bots hosts share (the RPA
queue's, `gestic_rpa.ledger`; SQLite in the state dir when none is declared), and a scheduled
run of a bot that reviews the access report (`access_report:` in its manifest) starts from the
newest report of its environment, if that is recent enough.

The stored text is the report's JSON exactly as `access-report.json` holds it (compact), at
most `MAX_REPORT_BYTES`; the newest `KEEP_PER_ENVIRONMENT` reports of each environment are kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from gestic.errors import AccessReportError
from gestic.store import db
from gestic.store.db import UTCDateTime

__all__ = ["KEEP_PER_ENVIRONMENT", "MAX_REPORT_BYTES", "AccessReports", "PublishedReport"]

#: The largest report stored (compact UTF-8 JSON): some thousand accounts per host, hundreds
#: of hosts. A larger one is refused, never cut.
MAX_REPORT_BYTES: Final = 8 * 1024 * 1024
#: Reports kept per environment (older ones are deleted when a new one is published).
KEEP_PER_ENVIRONMENT: Final = 20
#: The command that makes (and publishes) a report, for messages.
MAKE_COMMAND: Final = "gestic --env {env} access report"

metadata = MetaData()

reports_table = Table(
    "gestic_access_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment", String(255), nullable=False),
    Column("generated_at", UTCDateTime(), nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("run_id", Integer, nullable=True),  # the `access.report` run of the controller
    Column("source", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("report", Text, nullable=False),
    Index("ix_gestic_access_reports_env_generated", "environment", "generated_at"),
)


@dataclass(frozen=True, kw_only=True)
class PublishedReport:
    """One published access report: its JSON text and where it came from."""

    id: int
    environment: str
    generated_at: datetime
    published_at: datetime
    run_id: int | None
    source: str
    sha256: str
    text: str

    @property
    def data(self) -> dict[str, Any]:
        value = json.loads(self.text)
        assert isinstance(value, dict)
        return value

    def age(self, now: datetime) -> timedelta:
        return now - self.generated_at

    def describe(self) -> dict[str, Any]:
        """What a run records of the report it started from (ledger details)."""
        return {
            "id": self.id,
            "environment": self.environment,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "run_id": self.run_id,
            "source": self.source,
            "sha256": self.sha256,
        }


def _generated_at(report: dict[str, Any]) -> datetime:
    try:
        when = datetime.fromisoformat(str(report["generated_at"]))
    except (KeyError, ValueError):
        raise AccessReportError(
            "an access report to publish needs generated_at (ISO 8601), "
            f"not {report.get('generated_at')!r}"
        ) from None
    if when.tzinfo is None:
        raise AccessReportError(f"access report generated_at {when} has no time zone")
    return when.astimezone(UTC)


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


class AccessReports:
    """The published access reports behind one SQLAlchemy URL (the RPA queue's database)."""

    def __init__(self, url: str) -> None:
        self.display_url = db.masked(url)
        self._engine: Engine = db.make_engine(
            url, what="access reports' database", error=AccessReportError, metadata=metadata
        )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> AccessReports:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, action: str) -> Any:
        return db.reraise(AccessReportError, f"access reports at {self.display_url}: {action}")

    def publish(
        self,
        report: dict[str, Any],
        *,
        source: str,
        run_id: int | None = None,
        now: datetime | None = None,
    ) -> PublishedReport:
        """Store `report` (report_json's dict) as its environment's newest; prune old ones."""
        environment = str(report.get("environment") or "")
        if not environment:
            raise AccessReportError("an access report to publish needs its environment")
        generated = _generated_at(report)
        text = json.dumps(report, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        raw = text.encode("utf-8")
        if len(raw) > MAX_REPORT_BYTES:
            raise AccessReportError(
                f"access report of {environment} is {len(raw)} bytes, more than the "
                f"{MAX_REPORT_BYTES} the shared ledger keeps: not published"
            )
        published = now or datetime.now(UTC)
        digest = hashlib.sha256(raw).hexdigest()
        with self._guard("cannot publish a report"), self._engine.begin() as conn:
            pk = conn.execute(
                insert(reports_table).values(
                    environment=environment,
                    generated_at=generated,
                    published_at=published,
                    run_id=run_id,
                    source=source[:255],
                    sha256=digest,
                    size=len(raw),
                    report=text,
                )
            ).inserted_primary_key
            keep = (
                select(reports_table.c.id)
                .where(reports_table.c.environment == environment)
                .order_by(reports_table.c.generated_at.desc(), reports_table.c.id.desc())
                .limit(KEEP_PER_ENVIRONMENT)
            )
            kept = [row.id for row in conn.execute(keep)]
            conn.execute(
                delete(reports_table).where(
                    reports_table.c.environment == environment, reports_table.c.id.not_in(kept)
                )
            )
        assert pk is not None
        return PublishedReport(
            id=int(pk[0]),
            environment=environment,
            generated_at=generated,
            published_at=published,
            run_id=run_id,
            source=source[:255],
            sha256=digest,
            text=text,
        )

    def newest(self, environment: str) -> PublishedReport | None:
        """The environment's most recently generated published report (None: none yet)."""
        query = (
            select(reports_table)
            .where(reports_table.c.environment == environment)
            .order_by(reports_table.c.generated_at.desc(), reports_table.c.id.desc())
            .limit(1)
        )
        with self._guard("cannot read the reports"), self._engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        m = row._mapping
        return PublishedReport(
            id=int(m["id"]),
            environment=str(m["environment"]),
            generated_at=m["generated_at"],
            published_at=m["published_at"],
            run_id=m["run_id"],
            source=str(m["source"]),
            sha256=str(m["sha256"]),
            text=str(m["report"]),
        )

    def recent(
        self, environment: str, *, max_age: timedelta, now: datetime | None = None
    ) -> PublishedReport:
        """The newest report of `environment`, if not older than `max_age` (else an error
        saying which command makes one)."""
        now = now or datetime.now(UTC)
        found = self.newest(environment)
        make = MAKE_COMMAND.format(env=environment)
        if found is None:
            raise AccessReportError(
                f"no access report of environment {environment!r} has been published in "
                f"{self.display_url}: make one on the controller with `{make}`"
            )
        if found.age(now) > max_age:
            raise AccessReportError(
                f"the newest access report of environment {environment!r} was made at "
                f"{found.generated_at:%Y-%m-%d %H:%M} UTC, {_hours(found.age(now))} ago, more "
                f"than gestic_rpa.access_report_max_age_hours ({_hours(max_age)}): make a "
                f"fresh one on the controller with `{make}`"
            )
        return found
