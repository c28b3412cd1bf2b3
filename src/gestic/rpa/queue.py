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

The tables and records are in `gestic.rpa.queue_schema`; payloads, files, listing and
counting in `gestic.rpa.queue_store`. These modules only need the standard library and
SQLAlchemy: the robots' work-item adapter imports them inside the robots' own environment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from gestic.errors import LeaseLostError, QueueError
from gestic.rpa.queue_schema import (
    ABANDONED,
    APPLICATION,
    BUSINESS,
    CLAIM_CANDIDATES,
    DONE,
    DRAFT,
    DRAFT_FINAL,
    EXCEPTION_TYPES,
    FAILED,
    IN_PROGRESS,
    LEASE_EXPIRED_CODE,
    PENDING,
    Attempt,
    Item,
    QueueCounts,
    attempts_table,
    backoff_delay,
    files_table,
    item_from_row,
    items_table,
    new_owner,
    utcnow,
)
from gestic.rpa.queue_store import QueueStore

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
    "backoff_delay",
    "new_owner",
]


class WorkQueue(QueueStore):
    """The work-item queues behind one SQLAlchemy URL (the ledger's). Safe across processes."""

    # -- creating items -------------------------------------------------------------------

    # -- claiming and leases --------------------------------------------------------------

    def sweep(self, queue: str) -> list[int]:
        """Dead-letter items of `queue` whose lease expired on their last allowed attempt."""
        now = utcnow()
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
            now = utcnow()
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
                    return item_from_row(row)
            # Every candidate was taken by others between our SELECT and UPDATE: look again.

    def heartbeat(self, item_id: int, owner: str, *, lease_s: float) -> bool:
        """Renew the lease of an item this worker holds; False if it is no longer held."""
        now = utcnow()
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
        now = utcnow()
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
        now = utcnow()
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
        return item_from_row(stored)

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
