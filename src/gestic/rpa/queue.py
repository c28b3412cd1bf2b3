"""The work-item queue: producer/consumer items stored in the ledger database.

Every item lives in one named queue and moves through these states::

    draft -> pending -> in_progress -> done
                 ^           |
                 |           +-> failed (BUSINESS: bad data, never retried)
                 +-----------+-> pending again (APPLICATION, with backoff) ... -> failed
                                 (dead letter once `max_attempts` is spent)

* A worker *claims* an item with one conditional UPDATE (``WHERE id = ? AND state = 'pending'
  ...``) and checks the row count, which is atomic in SQLite and PostgreSQL alike: two workers
  can never hold the same item. On PostgreSQL the candidate is picked with ``SELECT ... FOR
  UPDATE SKIP LOCKED`` (workers on several hosts skip each other's rows instead of queueing
  on them); on SQLite the claim holds the database's write lock (``BEGIN IMMEDIATE``).
* A claim is a *lease* that expires; a live worker renews it (heartbeat). An item whose lease
  expired (its worker died) is claimed again by the next worker, as a new attempt, or is
  dead-lettered when it has no attempts left.
* Completing or failing an item requires the worker's lease token, so an item is completed at
  most once even if a worker that lost its lease wakes up later.
* Output items created while processing an input are *drafts* until the input is released:
  they are published when it is done or failed for good (BUSINESS), and discarded when it will
  be retried, so a retried item never produces its outputs twice.

This module only needs the standard library and SQLAlchemy: the robots' work-item adapter
imports it inside the robots' own environment.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from gestic import db
from gestic.db import PortableText, UTCDateTime
from gestic.errors import LeaseLostError, QueueError
from gestic.rpa.payload import check_payload

__all__ = [
    "APPLICATION",
    "BUSINESS",
    "DONE",
    "DRAFT",
    "FAILED",
    "IN_PROGRESS",
    "PENDING",
    "Attempt",
    "Item",
    "QueueCounts",
    "WorkQueue",
    "new_owner",
]

DRAFT: Final = "draft"
#: A draft output of a bot's last step: a record, done (not pending) once published.
DRAFT_FINAL: Final = "draft_final"
PENDING: Final = "pending"
IN_PROGRESS: Final = "in_progress"
DONE: Final = "done"
FAILED: Final = "failed"
STATES: Final = (DRAFT, PENDING, IN_PROGRESS, DONE, FAILED)

BUSINESS: Final = "BUSINESS"
APPLICATION: Final = "APPLICATION"
EXCEPTION_TYPES: Final = frozenset({BUSINESS, APPLICATION})

#: Outcome recorded for an attempt whose worker stopped renewing its lease.
ABANDONED: Final = "abandoned"
LEASE_EXPIRED_CODE: Final = "LEASE_EXPIRED"

#: How many candidates one claim looks at before giving up to another worker.
CLAIM_CANDIDATES: Final = 8

metadata = MetaData()

items_table = Table(
    "gestic_rpa_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bot", String(64), nullable=False),
    Column("queue", String(128), nullable=False),
    Column("parent_id", Integer, nullable=True),
    Column("state", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("available_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("sla_due_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("worker", String(128), nullable=True),
    Column("exception_type", String(16), nullable=True),
    Column("exception_code", String(64), nullable=True),
    Column("exception_message", PortableText, nullable=True),
    Column("dead_letter", Boolean, nullable=False, default=False),
    Column("run_id", Integer, nullable=True),
    Index("ix_gestic_rpa_items_queue_state", "queue", "state", "available_at"),
    Index("ix_gestic_rpa_items_bot_created", "bot", "created_at"),
    Index("ix_gestic_rpa_items_parent", "parent_id"),
)

files_table = Table(
    "gestic_rpa_files",
    metadata,
    Column("item_id", Integer, ForeignKey("gestic_rpa_items.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("original_name", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
)

attempts_table = Table(
    "gestic_rpa_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("gestic_rpa_items.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("lease_owner", String(64), nullable=False),
    Column("worker", String(128), nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("exception_type", String(16), nullable=True),
    Column("exception_code", String(64), nullable=True),
    Column("exception_message", PortableText, nullable=True),
    Index("ix_gestic_rpa_attempts_item", "item_id"),
    Index("ix_gestic_rpa_attempts_worker", "worker"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """A fresh lease token: one per claim, so a stale worker can never release a newer claim."""
    return secrets.token_hex(16)


@dataclass(frozen=True, kw_only=True)
class Item:
    """One work item as stored."""

    id: int
    bot: str
    queue: str
    parent_id: int | None
    state: str
    payload: Any
    created_at: datetime
    available_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    sla_due_at: datetime | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    worker: str | None
    exception_type: str | None
    exception_code: str | None
    exception_message: str | None
    dead_letter: bool
    run_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (timestamps as ISO 8601)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        out.pop("lease_owner", None)
        return out


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One try at processing an item: who, when, and how it ended."""

    item_id: int
    attempt: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    exception_type: str | None
    exception_code: str | None
    exception_message: str | None


@dataclass(frozen=True, kw_only=True)
class QueueCounts:
    """What a queue holds right now."""

    queue: str
    draft: int = 0
    pending: int = 0
    waiting: int = 0  # pending, but held back by a retry backoff
    in_progress: int = 0
    expired: int = 0  # in progress, but the worker stopped renewing its lease
    done: int = 0
    failed_business: int = 0
    failed_application: int = 0
    next_available_at: datetime | None = None

    @property
    def outstanding(self) -> int:
        """Items still to be worked (ready, waiting for a retry, or held by a worker)."""
        return self.pending + self.waiting + self.in_progress


def _item(row: Row[Any]) -> Item:
    m = row._mapping
    return Item(
        id=int(m["id"]),
        bot=str(m["bot"]),
        queue=str(m["queue"]),
        parent_id=m["parent_id"],
        state=str(m["state"]),
        payload=m["payload"],
        created_at=m["created_at"],
        available_at=m["available_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        sla_due_at=m["sla_due_at"],
        attempts=int(m["attempts"]),
        max_attempts=int(m["max_attempts"]),
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        worker=m["worker"],
        exception_type=m["exception_type"],
        exception_code=m["exception_code"],
        exception_message=m["exception_message"],
        dead_letter=bool(m["dead_letter"]),
        run_id=m["run_id"],
    )


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait before retry number `attempt` (1-based): base * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, not {attempt}")
    return float(min(max_s, base_s * (2 ** (attempt - 1))))


class WorkQueue:
    """The work-item queues behind one SQLAlchemy URL (the ledger's). Safe across processes."""

    def __init__(self, url: str) -> None:
        self.display_url = db.masked(url)
        self._engine: Engine = db.make_engine(
            url, what="work-item queue", error=QueueError, metadata=metadata, write_lock=True
        )
        #: Read-only transactions (listing, counting): no write lock on SQLite.
        self._reader = self._engine.execution_options(**{db.READ_ONLY_OPTION: True})
        #: PostgreSQL: claims and sweeps lock their rows (FOR UPDATE SKIP LOCKED). SQLite has
        #: no row locks: its writers hold the database's write lock (BEGIN IMMEDIATE).
        self._row_locks = self._engine.dialect.name == "postgresql"

    def __repr__(self) -> str:
        return f"WorkQueue({self.display_url!r})"

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def _guard(self, action: str) -> contextlib.AbstractContextManager[None]:
        return db.reraise(QueueError, f"work-item queue at {self.display_url}: cannot {action}")

    # -- creating items -------------------------------------------------------------------

    def create(
        self,
        *,
        bot: str,
        queue: str,
        payload: Any = None,
        files: Mapping[str, bytes] | None = None,
        parent_id: int | None = None,
        max_attempts: int = 3,
        sla_minutes: float | None = None,
        run_id: int | None = None,
        state: str = PENDING,
        created_at: datetime | None = None,
    ) -> int:
        """Add an item to `queue` and return its id (`state`: pending, draft or done)."""
        if state not in (PENDING, DRAFT, DRAFT_FINAL, DONE):
            raise ValueError(f"a new item is pending, draft or done, not {state!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts}")
        payload = check_payload(payload, what=f"payload of a new item in {queue}")
        now = created_at or _now()
        due = now + timedelta(minutes=sla_minutes) if sla_minutes is not None else None
        with self._guard(f"add an item to {queue}"), self._engine.begin() as conn:
            result = conn.execute(
                insert(items_table).values(
                    bot=bot,
                    queue=queue,
                    parent_id=parent_id,
                    state=state,
                    payload=payload,
                    created_at=now,
                    available_at=now,
                    updated_at=now,
                    finished_at=now if state == DONE else None,
                    sla_due_at=due,
                    attempts=0,
                    max_attempts=max_attempts,
                    dead_letter=False,
                    run_id=run_id,
                )
            )
            pk = result.inserted_primary_key
            if pk is None or pk[0] is None:
                raise QueueError(f"work-item queue at {self.display_url}: new item got no id")
            item_id = int(pk[0])
            for name, content in (files or {}).items():
                conn.execute(
                    insert(files_table).values(
                        item_id=item_id, name=name, original_name=name, content=content
                    )
                )
        return item_id

    # -- claiming and leases --------------------------------------------------------------

    def sweep(self, queue: str) -> list[int]:
        """Dead-letter items of `queue` whose lease expired on their last allowed attempt."""
        now = _now()
        expired = select(items_table.c.id, items_table.c.lease_owner).where(
            items_table.c.queue == queue,
            items_table.c.state == IN_PROGRESS,
            items_table.c.lease_expires_at < now,
            items_table.c.attempts >= items_table.c.max_attempts,
        )
        if self._row_locks:  # workers sweeping at once split the rows instead of deadlocking
            expired = expired.order_by(items_table.c.id).with_for_update(skip_locked=True)
        with self._guard(f"sweep {queue}"), self._engine.begin() as conn:
            rows = conn.execute(expired).all()
            swept = []
            for row in rows:
                result = conn.execute(
                    update(items_table)
                    .where(
                        items_table.c.id == row.id,
                        items_table.c.state == IN_PROGRESS,
                        items_table.c.lease_owner == row.lease_owner,
                    )
                    .values(
                        state=FAILED,
                        dead_letter=True,
                        exception_type=APPLICATION,
                        exception_code=LEASE_EXPIRED_CODE,
                        exception_message="the worker stopped renewing its lease "
                        "on the last allowed attempt",
                        lease_owner=None,
                        lease_expires_at=None,
                        finished_at=now,
                        updated_at=now,
                    )
                )
                if result.rowcount == 1:
                    self._close_attempt(
                        conn,
                        row.id,
                        row.lease_owner,
                        now=now,
                        outcome=ABANDONED,
                        exception_type=APPLICATION,
                        code=LEASE_EXPIRED_CODE,
                        message="lease expired",
                    )
                    self._discard_drafts(conn, row.id)
                    swept.append(int(row.id))
        return swept

    def claim(self, queue: str, *, lease_s: float, worker: str | None = None) -> Item | None:
        """Reserve the oldest claimable item of `queue` for `lease_s` seconds; None if none.

        Claimable: pending and past its backoff, or in progress with an expired lease (its
        worker died: this is a new attempt). Items with no attempts left are never claimed.
        """
        self.sweep(queue)
        owner = new_owner()
        while True:
            now = _now()
            claimable = and_(
                items_table.c.queue == queue,
                items_table.c.attempts < items_table.c.max_attempts,
                or_(
                    and_(items_table.c.state == PENDING, items_table.c.available_at <= now),
                    and_(items_table.c.state == IN_PROGRESS, items_table.c.lease_expires_at < now),
                ),
            )
            pick = (
                select(items_table.c.id, items_table.c.lease_owner)
                .where(claimable)
                .order_by(items_table.c.available_at, items_table.c.id)
            )
            if self._row_locks:
                # Lock the one candidate; rows other workers (any host) are claiming right
                # now are skipped, not waited for, so the UPDATE below cannot lose the race.
                pick = pick.limit(1).with_for_update(skip_locked=True)
            else:
                pick = pick.limit(CLAIM_CANDIDATES)
            with self._guard(f"claim an item of {queue}"), self._engine.begin() as conn:
                candidates = conn.execute(pick).all()
                if not candidates:
                    return None
                for cand in candidates:
                    result = conn.execute(
                        update(items_table)
                        .where(items_table.c.id == cand.id, claimable)
                        .values(
                            state=IN_PROGRESS,
                            lease_owner=owner,
                            lease_expires_at=now + timedelta(seconds=lease_s),
                            attempts=items_table.c.attempts + 1,
                            started_at=func.coalesce(items_table.c.started_at, now),
                            worker=worker,
                            updated_at=now,
                        )
                    )
                    if result.rowcount != 1:
                        continue  # another worker got it first
                    if cand.lease_owner is not None:  # taken over from a dead worker
                        self._close_attempt(
                            conn,
                            cand.id,
                            cand.lease_owner,
                            now=now,
                            outcome=ABANDONED,
                            exception_type=APPLICATION,
                            code=LEASE_EXPIRED_CODE,
                            message="lease expired",
                        )
                        self._discard_drafts(conn, cand.id)
                    row = conn.execute(select(items_table).where(items_table.c.id == cand.id)).one()
                    conn.execute(
                        insert(attempts_table).values(
                            item_id=cand.id,
                            attempt=row.attempts,
                            lease_owner=owner,
                            worker=worker,
                            started_at=now,
                        )
                    )
                    return _item(row)
            # Every candidate was taken by others between our SELECT and UPDATE: look again.

    def heartbeat(self, item_id: int, owner: str, *, lease_s: float) -> bool:
        """Renew the lease of an item this worker holds; False if it is no longer held."""
        now = _now()
        with self._guard(f"renew the lease of item {item_id}"), self._engine.begin() as conn:
            result = conn.execute(
                update(items_table)
                .where(
                    items_table.c.id == item_id,
                    items_table.c.state == IN_PROGRESS,
                    items_table.c.lease_owner == owner,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            )
            return result.rowcount == 1

    def complete(self, item_id: int, owner: str) -> None:
        """Mark a held item done and publish its outputs (LeaseLostError if not held)."""
        now = _now()
        with self._guard(f"complete item {item_id}"), self._engine.begin() as conn:
            result = conn.execute(
                update(items_table)
                .where(
                    items_table.c.id == item_id,
                    items_table.c.state == IN_PROGRESS,
                    items_table.c.lease_owner == owner,
                )
                .values(
                    state=DONE,
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    exception_type=None,
                    exception_code=None,
                    exception_message=None,
                )
            )
            if result.rowcount != 1:
                raise LeaseLostError(
                    f"item {item_id} is no longer held by this worker (lease expired and "
                    "taken over, or already released): not completed twice"
                )
            self._close_attempt(conn, item_id, owner, now=now, outcome=DONE)
            self._publish_drafts(conn, item_id, now)

    def fail(
        self,
        item_id: int,
        owner: str,
        *,
        exception_type: str,
        code: str | None = None,
        message: str | None = None,
        backoff_s: float = 0.0,
        backoff_max_s: float = 3600.0,
    ) -> Item:
        """Release a held item as failed.

        BUSINESS: final (state failed), its outputs are published. APPLICATION: back to
        pending after a backoff while attempts remain (outputs discarded), else failed and
        dead-lettered.
        """
        if exception_type not in EXCEPTION_TYPES:
            raise ValueError(
                f"exception type must be one of {sorted(EXCEPTION_TYPES)}, not {exception_type!r}"
            )
        now = _now()
        with self._guard(f"fail item {item_id}"), self._engine.begin() as conn:
            row = conn.execute(
                select(items_table.c.attempts, items_table.c.max_attempts).where(
                    items_table.c.id == item_id,
                    items_table.c.state == IN_PROGRESS,
                    items_table.c.lease_owner == owner,
                )
            ).one_or_none()
            if row is None:
                raise LeaseLostError(
                    f"item {item_id} is no longer held by this worker: cannot release it"
                )
            values: dict[str, Any] = {
                "exception_type": exception_type,
                "exception_code": (code or None) and str(code)[:64],
                "exception_message": message,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": now,
            }
            retry = exception_type == APPLICATION and row.attempts < row.max_attempts
            if retry:
                delay = backoff_delay(row.attempts, backoff_s, backoff_max_s)
                values.update(state=PENDING, available_at=now + timedelta(seconds=delay))
            else:
                values.update(
                    state=FAILED, finished_at=now, dead_letter=exception_type == APPLICATION
                )
            result = conn.execute(
                update(items_table)
                .where(
                    items_table.c.id == item_id,
                    items_table.c.state == IN_PROGRESS,
                    items_table.c.lease_owner == owner,
                )
                .values(**values)
            )
            if result.rowcount != 1:
                raise LeaseLostError(f"item {item_id} was released concurrently")
            self._close_attempt(
                conn,
                item_id,
                owner,
                now=now,
                outcome=exception_type.lower(),
                exception_type=exception_type,
                code=code,
                message=message,
            )
            if exception_type == BUSINESS:
                self._publish_drafts(conn, item_id, now)
            else:
                self._discard_drafts(conn, item_id)
            stored = conn.execute(select(items_table).where(items_table.c.id == item_id)).one()
        return _item(stored)

    def release_held(self, worker: str, *, done: bool) -> list[int]:
        """Items still held by robot `worker` when it ended: completed if `done` (the robot
        finished cleanly without releasing its last item), else left to their lease, so a
        robot that died mid-item has its item retried once the lease expires."""
        with self._guard("list held items"), self._reader.connect() as conn:
            rows = conn.execute(
                select(items_table.c.id, items_table.c.lease_owner).where(
                    items_table.c.worker == worker, items_table.c.state == IN_PROGRESS
                )
            ).all()
        if done:
            for row in rows:
                self.complete(int(row.id), str(row.lease_owner))
        return [int(r.id) for r in rows]

    def outcomes_by(self, worker: str) -> dict[str, int]:
        """How the attempts robot `worker` ended itself came out (done, business,
        application), not counting items it abandoned by dying."""
        query = (
            select(attempts_table.c.outcome, func.count())
            .where(
                attempts_table.c.worker == worker,
                attempts_table.c.finished_at.is_not(None),
                attempts_table.c.outcome != ABANDONED,
            )
            .group_by(attempts_table.c.outcome)
        )
        with self._guard("count finished attempts"), self._reader.connect() as conn:
            return {str(outcome): int(n) for outcome, n in conn.execute(query).all()}

    def _close_attempt(
        self,
        conn: Any,
        item_id: int,
        owner: str,
        *,
        now: datetime,
        outcome: str,
        exception_type: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        conn.execute(
            update(attempts_table)
            .where(
                attempts_table.c.item_id == item_id,
                attempts_table.c.lease_owner == owner,
                attempts_table.c.finished_at.is_(None),
            )
            .values(
                finished_at=now,
                outcome=outcome,
                exception_type=exception_type,
                exception_code=(code or None) and str(code)[:64],  # the column is 64 wide
                exception_message=message,
            )
        )

    def _publish_drafts(self, conn: Any, parent_id: int, now: datetime) -> None:
        conn.execute(
            update(items_table)
            .where(items_table.c.parent_id == parent_id, items_table.c.state == DRAFT)
            .values(state=PENDING, available_at=now, updated_at=now)
        )
        # Outputs of a final step are records, not work: they go straight to done.
        conn.execute(
            update(items_table)
            .where(items_table.c.parent_id == parent_id, items_table.c.state == DRAFT_FINAL)
            .values(state=DONE, finished_at=now, updated_at=now)
        )

    def _discard_drafts(self, conn: Any, parent_id: int) -> None:
        drafts = select(items_table.c.id).where(
            items_table.c.parent_id == parent_id,
            items_table.c.state.in_((DRAFT, DRAFT_FINAL)),
        )
        conn.execute(delete(files_table).where(files_table.c.item_id.in_(drafts)))
        conn.execute(
            delete(items_table).where(
                items_table.c.parent_id == parent_id,
                items_table.c.state.in_((DRAFT, DRAFT_FINAL)),
            )
        )

    def create_output(
        self,
        *,
        parent_id: int,
        queue: str,
        payload: Any,
        max_attempts: int,
        sla_minutes: float | None,
        final: bool = False,
    ) -> int:
        """A draft output of `parent_id` in `queue`, published when the parent is released.

        `final`: the output of a bot's last step (a record, done when published).
        """
        with self._guard(f"read item {parent_id}"), self._reader.connect() as conn:
            parent = conn.execute(
                select(items_table.c.bot, items_table.c.run_id, items_table.c.state).where(
                    items_table.c.id == parent_id
                )
            ).one_or_none()
        if parent is None:
            raise QueueError(f"work-item queue: no item {parent_id} to create an output for")
        return self.create(
            bot=parent.bot,
            queue=queue,
            payload=payload,
            parent_id=parent_id,
            max_attempts=max_attempts,
            sla_minutes=None if final else sla_minutes,
            run_id=parent.run_id,
            state=DRAFT_FINAL if final else DRAFT,
        )

    # -- payloads and files ---------------------------------------------------------------

    def load_payload(self, item_id: int) -> Any:
        with self._guard(f"read item {item_id}"), self._reader.connect() as conn:
            value = conn.execute(
                select(items_table.c.payload).where(items_table.c.id == item_id)
            ).scalar_one_or_none()
        if value is None:
            raise QueueError(f"work-item queue: no item {item_id}")
        return value

    def save_payload(self, item_id: int, payload: Any) -> None:
        payload = check_payload(payload, what=f"payload of item {item_id}")
        with self._guard(f"save item {item_id}"), self._engine.begin() as conn:
            result = conn.execute(
                update(items_table)
                .where(items_table.c.id == item_id)
                .values(payload=payload, updated_at=_now())
            )
            if result.rowcount != 1:
                raise QueueError(f"work-item queue: no item {item_id}")

    def list_files(self, item_id: int) -> list[str]:
        with self._guard(f"list files of item {item_id}"), self._reader.connect() as conn:
            rows = conn.execute(
                select(files_table.c.name)
                .where(files_table.c.item_id == item_id)
                .order_by(files_table.c.name)
            ).all()
        return [str(r.name) for r in rows]

    def get_file(self, item_id: int, name: str) -> bytes:
        with self._guard(f"read file {name} of item {item_id}"), self._reader.connect() as conn:
            content = conn.execute(
                select(files_table.c.content).where(
                    files_table.c.item_id == item_id, files_table.c.name == name
                )
            ).scalar_one_or_none()
        if content is None:
            raise FileNotFoundError(f"item {item_id} has no file {name!r}")
        return bytes(content)

    def add_file(self, item_id: int, name: str, *, original_name: str, content: bytes) -> None:
        with self._guard(f"attach {name} to item {item_id}"), self._engine.begin() as conn:
            conn.execute(
                delete(files_table).where(
                    files_table.c.item_id == item_id, files_table.c.name == name
                )
            )
            conn.execute(
                insert(files_table).values(
                    item_id=item_id, name=name, original_name=original_name, content=content
                )
            )

    def remove_file(self, item_id: int, name: str) -> None:
        with self._guard(f"remove {name} from item {item_id}"), self._engine.begin() as conn:
            conn.execute(
                delete(files_table).where(
                    files_table.c.item_id == item_id, files_table.c.name == name
                )
            )

    # -- reading --------------------------------------------------------------------------

    def get(self, item_id: int) -> Item:
        with self._guard(f"read item {item_id}"), self._reader.connect() as conn:
            row = conn.execute(select(items_table).where(items_table.c.id == item_id)).one_or_none()
        if row is None:
            raise QueueError(f"work-item queue: no item {item_id}")
        return _item(row)

    def items(
        self,
        *,
        bot: str | None = None,
        queue: str | None = None,
        states: Sequence[str] | None = None,
        parent_id: int | None = None,
        run_id: int | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[Item]:
        """Items matching every given filter, oldest first."""
        query = select(items_table)
        if bot is not None:
            query = query.where(items_table.c.bot == bot)
        if queue is not None:
            query = query.where(items_table.c.queue == queue)
        if states is not None:
            query = query.where(items_table.c.state.in_(list(states)))
        if parent_id is not None:
            query = query.where(items_table.c.parent_id == parent_id)
        if run_id is not None:
            query = query.where(items_table.c.run_id == run_id)
        if created_before is not None:
            query = query.where(items_table.c.created_at < created_before)
        query = query.order_by(items_table.c.created_at, items_table.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._guard("list items"), self._reader.connect() as conn:
            return [_item(r) for r in conn.execute(query).all()]

    def attempts(self, item_ids: Sequence[int] | None = None) -> list[Attempt]:
        """The attempts of these items (all when None), in order."""
        query = select(attempts_table).order_by(attempts_table.c.item_id, attempts_table.c.id)
        if item_ids is not None:
            query = query.where(attempts_table.c.item_id.in_(list(item_ids)))
        with self._guard("list attempts"), self._reader.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Attempt(
                item_id=int(r.item_id),
                attempt=int(r.attempt),
                worker=r.worker,
                started_at=r.started_at,
                finished_at=r.finished_at,
                outcome=r.outcome,
                exception_type=r.exception_type,
                exception_code=r.exception_code,
                exception_message=r.exception_message,
            )
            for r in rows
        ]

    def counts(self, queue: str) -> QueueCounts:
        """How many items of `queue` are in each state right now."""
        now = _now()
        with self._guard(f"count {queue}"), self._reader.connect() as conn:
            rows = conn.execute(
                select(
                    items_table.c.state,
                    items_table.c.exception_type,
                    items_table.c.available_at,
                    items_table.c.lease_expires_at,
                ).where(items_table.c.queue == queue)
            ).all()
        tally = dict.fromkeys(
            (
                "draft",
                "pending",
                "waiting",
                "in_progress",
                "expired",
                "done",
                "failed_business",
                "failed_application",
            ),
            0,
        )
        next_at: datetime | None = None
        for r in rows:
            if r.state in (DRAFT, DRAFT_FINAL):
                tally["draft"] += 1
            elif r.state == PENDING and r.available_at > now:
                tally["waiting"] += 1
                next_at = r.available_at if next_at is None else min(next_at, r.available_at)
            elif r.state == PENDING:
                tally["pending"] += 1
            elif r.state == IN_PROGRESS:
                tally["in_progress"] += 1
                if r.lease_expires_at is not None and r.lease_expires_at < now:
                    tally["expired"] += 1
            elif r.state == DONE:
                tally["done"] += 1
            elif r.exception_type == BUSINESS:
                tally["failed_business"] += 1
            else:
                tally["failed_application"] += 1
        return QueueCounts(queue=queue, next_available_at=next_at, **tally)

    def queues(self) -> list[tuple[str, str]]:
        """Every (bot, queue) that has items."""
        with self._guard("list queues"), self._reader.connect() as conn:
            rows = conn.execute(
                select(items_table.c.bot, items_table.c.queue).distinct().order_by("bot", "queue")
            ).all()
        return [(str(r.bot), str(r.queue)) for r in rows]

    def requeue_failed(
        self, *, queue: str, include_business: bool = False, extra_attempts: int | None = None
    ) -> list[int]:
        """Put failed items of `queue` back to pending with a fresh attempt budget.

        By default only APPLICATION failures (dead letters); `include_business` also re-runs
        BUSINESS failures (after their data was corrected).
        """
        now = _now()
        types = [APPLICATION, BUSINESS] if include_business else [APPLICATION]
        with self._guard(f"requeue failed items of {queue}"), self._engine.begin() as conn:
            rows = conn.execute(
                select(items_table.c.id, items_table.c.attempts, items_table.c.max_attempts).where(
                    items_table.c.queue == queue,
                    items_table.c.state == FAILED,
                    items_table.c.exception_type.in_(types),
                )
            ).all()
            for r in rows:
                budget = extra_attempts if extra_attempts is not None else r.max_attempts
                conn.execute(
                    update(items_table)
                    .where(items_table.c.id == r.id, items_table.c.state == FAILED)
                    .values(
                        state=PENDING,
                        dead_letter=False,
                        max_attempts=r.attempts + max(1, budget),
                        available_at=now,
                        finished_at=None,
                        updated_at=now,
                    )
                )
        return [int(r.id) for r in rows]
