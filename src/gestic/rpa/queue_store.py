"""The work-item queue's connection and what is not a worker's part of an item's lifecycle:
payloads, files, listing, counting and the operator's requeue (`gestic.rpa.queue.WorkQueue`
adds creating, claiming and releasing).

Only the standard library and SQLAlchemy, like `gestic.rpa.queue` (the robots' environment
imports it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gestic.errors import FileTakenError, QueueError
from gestic.rpa.payload import check_payload
from gestic.rpa.queue_schema import (
    ABANDONED,
    APPLICATION,
    BUSINESS,
    DONE,
    DRAFT,
    DRAFT_FINAL,
    FAILED,
    IN_PROGRESS,
    PENDING,
    Attempt,
    Item,
    QueueCounts,
    attempts_table,
    files_table,
    fires_table,
    intake_table,
    item_from_row,
    items_table,
    metadata,
    utcnow,
)
from gestic.store import db


class QueueStore:
    """The queue tables behind one SQLAlchemy URL (the ledger's). Safe across processes."""

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
        return f"{type(self).__name__}({self.display_url!r})"

    @staticmethod
    def _taken(conn: Connection, source: str, digest: str) -> bool:
        """Whether a file with this content was taken from `source` before (gestic.rpa.intake)."""
        found = conn.execute(
            select(intake_table.c.item_id).where(
                intake_table.c.source == source, intake_table.c.sha256 == digest
            )
        ).first()
        return found is not None

    def taken_from(self, source: str) -> dict[str, int]:
        """The files taken from `source`: sha256 -> the item made of it."""
        with self._guard(f"list the files taken from {source}"), self._engine.connect() as conn:
            rows = conn.execute(
                select(intake_table.c.sha256, intake_table.c.item_id).where(
                    intake_table.c.source == source
                )
            ).all()
        return {row.sha256: int(row.item_id) for row in rows}

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
        intake: tuple[str, str, str] | None = None,
    ) -> int:
        """Add an item to `queue` and return its id (`state`: pending, draft or done).

        `intake` (source, sha256, file name): the item is a file taken from an inbox; when that
        content was taken from that source before, nothing is added and FileTakenError says so.
        """
        if state not in (PENDING, DRAFT, DRAFT_FINAL, DONE):
            raise ValueError(f"a new item is pending, draft or done, not {state!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts}")
        payload = check_payload(payload, what=f"payload of a new item in {queue}")
        now = created_at or utcnow()
        due = now + timedelta(minutes=sla_minutes) if sla_minutes is not None else None
        with self._guard(f"add an item to {queue}"):
            try:
                with self._engine.begin() as conn:
                    if intake is not None and self._taken(conn, intake[0], intake[1]):
                        raise FileTakenError(f"{intake[2]} was taken from {intake[0]} before")
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
                        raise QueueError(
                            f"work-item queue at {self.display_url}: new item got no id"
                        )
                    item_id = int(pk[0])
                    for name, content in (files or {}).items():
                        conn.execute(
                            insert(files_table).values(
                                item_id=item_id, name=name, original_name=name, content=content
                            )
                        )
                    if (
                        intake is not None
                    ):  # the primary key refuses a second taker of the same file
                        source, digest, file_name = intake
                        conn.execute(
                            insert(intake_table).values(
                                source=source, sha256=digest, file_name=file_name, item_id=item_id,
                                taken_at=now,
                            )
                        )  # fmt: skip
            except IntegrityError:
                if intake is None:
                    raise
                # another taker took the same file a moment ago
                raise FileTakenError(f"{intake[2]} was taken from {intake[0]} before") from None
        return item_id

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def _guard(self, action: str) -> contextlib.AbstractContextManager[None]:
        return db.reraise(QueueError, f"work-item queue at {self.display_url}: cannot {action}")

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
                .values(payload=payload, updated_at=utcnow())
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
        return item_from_row(row)

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
            return [item_from_row(r) for r in conn.execute(query).all()]

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
        now = utcnow()
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

    def claim_fire(self, bot: str, due: datetime, *, host: str) -> str | None:
        """Claim `bot`'s scheduled fire at `due` for `host`: None when claimed now, else the
        host that claimed it first (every bots host shares the schedule and this table)."""
        with self._guard(f"claim the scheduled run of {bot} at {due.isoformat()}"):
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        insert(fires_table).values(
                            bot=bot, due_at=due, host=host, claimed_at=utcnow()
                        )
                    )
            except IntegrityError:
                with self._reader.connect() as conn:
                    first = conn.execute(
                        select(fires_table.c.host).where(
                            fires_table.c.bot == bot, fires_table.c.due_at == due
                        )
                    ).scalar_one_or_none()
                return str(first) if first is not None else "another host"
        return None

    def fire_seeded(self, bot: str, due: datetime) -> None:
        """Say that the claimed fire's first items are queued (the other hosts may start)."""
        with self._guard(f"mark the scheduled run of {bot} seeded"), self._engine.begin() as conn:
            conn.execute(
                update(fires_table)
                .where(fires_table.c.bot == bot, fires_table.c.due_at == due)
                .values(seeded_at=utcnow())
            )

    def release_fire(self, bot: str, due: datetime) -> None:
        """Give up a claimed fire that was never seeded (its seeding failed): the next try, on
        this host or another, may claim it again."""
        with self._guard(f"release the scheduled run of {bot}"), self._engine.begin() as conn:
            conn.execute(
                delete(fires_table).where(
                    fires_table.c.bot == bot,
                    fires_table.c.due_at == due,
                    fires_table.c.seeded_at.is_(None),
                )
            )

    def wait_fire_seeded(
        self, bot: str, due: datetime, *, timeout_s: float, poll_s: float = 1.0
    ) -> bool:
        """Wait up to `timeout_s` for the host that claimed the fire to seed it."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._guard(f"read the scheduled run of {bot}"), self._reader.connect() as conn:
                seeded = conn.execute(
                    select(fires_table.c.seeded_at).where(
                        fires_table.c.bot == bot, fires_table.c.due_at == due
                    )
                ).scalar_one_or_none()
            if seeded is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

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
        now = utcnow()
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
