"""The run ledger: one row for every run gestic does (infra, converge, verify, drills, robots).

The ledger is a single table reached through SQLAlchemy Core, so any SQLAlchemy URL works:
SQLite (the default, a file under the state dir) for one operator, PostgreSQL for a shared
install (`postgresql+psycopg://...`, see `gestic.store.db`). Each row records what ran, against
which target, from which git commit, who ran it, when, how long it took, the result, the
number of changed resources and a JSON details blob.

Typical use::

    ledger = Ledger.from_env()
    with ledger.record(kind="infra.up", target="lab") as run:
        result = stack.up()
        run.changed = result.changed
        run.summary = f"{result.changed} resources changed"
        run.add_details(outputs=result.outputs)
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from gestic import paths
from gestic.errors import LedgerError
from gestic.store import db
from gestic.store.db import PortableText, UTCDateTime

__all__ = [
    "FAILED",
    "FINAL_STATUSES",
    "LEDGER_URL_ENV",
    "RUNNING",
    "SUCCEEDED",
    "USER_ENV",
    "Ledger",
    "RunHandle",
    "RunRecord",
    "default_url",
]

LEDGER_URL_ENV: Final = "GESTIC_LEDGER_URL"
USER_ENV: Final = "GESTIC_USER"

RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
FINAL_STATUSES: Final = frozenset({SUCCEEDED, FAILED})

#: How long commit detection may take before the run is recorded without a commit.
GIT_TIMEOUT_S: Final = 10.0


metadata = MetaData()

runs_table = Table(
    "gestic_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("commit", String(80), nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("status", String(16), nullable=False),
    Column("changed", Integer, nullable=True),
    Column("summary", PortableText, nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("user", String(255), nullable=False),
    Index("ix_gestic_runs_kind_started", "kind", "started_at"),
    Index("ix_gestic_runs_started", "started_at"),
)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run as stored in the ledger."""

    id: int
    kind: str
    target: str
    commit: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    status: str
    changed: int | None
    summary: str
    details: dict[str, Any]
    user: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (timestamps as ISO 8601 strings)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "commit": self.commit,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": self.duration_s,
            "status": self.status,
            "changed": self.changed,
            "summary": self.summary,
            "details": self.details,
            "user": self.user,
        }


@dataclass(kw_only=True)
class RunHandle:
    """What the body of `Ledger.record` uses to report on the run in progress."""

    run_id: int
    changed: int | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    #: The stored record, set once the run has been finished.
    result: RunRecord | None = None

    def add_details(self, details: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Merge keys into the details that will be stored when the run finishes."""
        if details:
            self.details.update(details)
        self.details.update(more)

    def fail(self, summary: str | None = None) -> None:
        """Record the run as failed when the body exits normally (e.g. verification found drift)."""
        self.failed = True
        if summary is not None:
            self.summary = summary


def default_url() -> str:
    """The ledger gestic uses without GESTIC_LEDGER_URL: a SQLite file in the state dir."""
    return f"sqlite:///{(paths.state_dir() / 'ledger.db').as_posix()}"


def _json_dumps(value: Any) -> str:
    # Values JSON cannot represent (paths, datetimes, enums...) are stored as their str().
    return json.dumps(value, default=str, ensure_ascii=False)


def _git(root: os.PathLike[str] | str, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def current_commit() -> str | None:
    """HEAD of the gestic checkout, with "+dirty" if it has uncommitted changes; None if unknown."""
    root = paths.repo_root()
    head = _git(root, "rev-parse", "--verify", "HEAD")
    if head is None or not head.strip():
        return None
    commit = head.strip()
    status = _git(root, "status", "--porcelain")
    if status is None or status.strip():
        # Unknown state counts as dirty: never claim a clean tree we could not check.
        commit += "+dirty"
    return commit


def current_user() -> str:
    """Who is running gestic: GESTIC_USER, else the login name."""
    if env := os.environ.get(USER_ENV):
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The run ledger behind one SQLAlchemy URL. Safe to share between threads."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.display_url = db.masked(url)
        # Monotonic start times of the runs this object started, for exact durations.
        self._started: dict[int, float] = {}
        self._lock = threading.Lock()
        self._engine: Engine = db.make_engine(
            url,
            what="run ledger",
            error=LedgerError,
            metadata=metadata,
            json_serializer=_json_dumps,
        )

    @classmethod
    def from_env(cls) -> Ledger:
        """The ledger at GESTIC_LEDGER_URL, else `<state dir>/ledger.db` (dir created)."""
        if url := os.environ.get(LEDGER_URL_ENV):
            return cls(url)
        state = paths.state_dir()
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the state directory {state}: {exc}") from exc
        return cls(default_url())

    def __repr__(self) -> str:
        return f"Ledger({self.display_url!r})"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (with its password: never print it, `display_url` is masked)."""
        return self._url

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _guard(self, action: str) -> contextlib.AbstractContextManager[None]:
        return db.reraise(LedgerError, f"run ledger at {self.display_url}: cannot {action}")

    def start(
        self,
        *,
        kind: str,
        target: str,
        details: dict[str, Any] | None = None,
        commit: str | None = None,
    ) -> int:
        """Record a run as started ("running") and return its id.

        `commit`: the checkout's commit when the caller already knows it (a part of a run it
        recorded a moment ago); else it is looked up (two git calls).
        """
        commit = commit or current_commit()
        user = current_user()
        started_at = _now()
        with self._guard(f"record the start of {kind} {target}"), self._engine.begin() as conn:
            result = conn.execute(
                insert(runs_table).values(
                    kind=kind,
                    target=target,
                    commit=commit,
                    started_at=started_at,
                    status=RUNNING,
                    summary="",
                    details=dict(details or {}),
                    user=user,
                )
            )
            pk = result.inserted_primary_key
        if pk is None or pk[0] is None:
            raise LedgerError(f"run ledger at {self.display_url}: the new run got no id")
        run_id = int(pk[0])
        with self._lock:
            self._started[run_id] = time.monotonic()
        return run_id

    def finish(
        self,
        run_id: int,
        *,
        status: str,
        changed: int | None = None,
        summary: str = "",
        details: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Close a running run: finish time, duration, status; `details` merge into the stored."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(FINAL_STATUSES)}, not {status!r}")
        finished_at = _now()
        with self._lock:
            mono_start = self._started.pop(run_id, None)
        with self._guard(f"record the end of run {run_id}"), self._engine.begin() as conn:
            row = conn.execute(
                select(runs_table.c.started_at, runs_table.c.status, runs_table.c.details).where(
                    runs_table.c.id == run_id
                )
            ).one_or_none()
            if row is None:
                raise LedgerError(f"run ledger at {self.display_url}: no run {run_id}")
            if row.status != RUNNING:
                raise LedgerError(
                    f"run ledger at {self.display_url}: run {run_id} already {row.status}"
                )
            if mono_start is not None:
                duration = time.monotonic() - mono_start
            else:
                duration = (finished_at - row.started_at).total_seconds()
            merged = {**(row.details or {}), **(details or {})}
            result = conn.execute(
                update(runs_table)
                .where(runs_table.c.id == run_id, runs_table.c.status == RUNNING)
                .values(
                    finished_at=finished_at,
                    duration_s=max(duration, 0.0),
                    status=status,
                    changed=changed,
                    summary=summary,
                    details=merged,
                )
            )
            if result.rowcount != 1:
                raise LedgerError(
                    f"run ledger at {self.display_url}: run {run_id} was finished concurrently"
                )
        return self.get(run_id)

    @contextlib.contextmanager
    def record(
        self, *, kind: str, target: str, details: dict[str, Any] | None = None
    ) -> Iterator[RunHandle]:
        """Record the body as one run.

        The run succeeds when the body exits normally, unless it called `handle.fail()`. Any
        exception (KeyboardInterrupt included) marks it failed with the exception text as
        summary, and is re-raised.
        """
        handle = RunHandle(run_id=self.start(kind=kind, target=target, details=details))
        try:
            yield handle
        except BaseException as exc:
            text = str(exc).strip() or type(exc).__name__
            extra = {**handle.details, "error_type": type(exc).__name__}
            try:
                handle.result = self.finish(
                    handle.run_id,
                    status=FAILED,
                    changed=handle.changed,
                    summary=text,
                    details=extra,
                )
            except (LedgerError, SQLAlchemyError) as ledger_exc:
                # The body's failure matters more than the bookkeeping: keep raising it.
                exc.add_note(f"gestic: run {handle.run_id} could not be recorded: {ledger_exc}")
            raise
        handle.result = self.finish(
            handle.run_id,
            status=FAILED if handle.failed else SUCCEEDED,
            changed=handle.changed,
            summary=handle.summary,
            details=handle.details,
        )

    def get(self, run_id: int) -> RunRecord:
        """The run with this id (LedgerError if there is none)."""
        with self._guard(f"read run {run_id}"), self._engine.connect() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).one_or_none()
        if row is None:
            raise LedgerError(f"run ledger at {self.display_url}: no run {run_id}")
        return _to_record(row)

    def runs(
        self, *, kind: str | None = None, target: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """The latest runs, newest first, optionally only of one kind and/or target."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        query = select(runs_table)
        if kind is not None:
            query = query.where(runs_table.c.kind == kind)
        if target is not None:
            query = query.where(runs_table.c.target == target)
        query = query.order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc()).limit(limit)
        with self._guard("list runs"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_to_record(row) for row in rows]


def _to_record(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=int(m["id"]),
        kind=str(m["kind"]),
        target=str(m["target"]),
        commit=m["commit"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration_s=m["duration_s"],
        status=str(m["status"]),
        changed=m["changed"],
        summary=m["summary"] or "",
        details=dict(m["details"] or {}),
        user=str(m["user"]),
    )
