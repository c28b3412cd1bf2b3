"""The work-item queue's tables and records: what `gestic.rpa.queue` stores and hands out.

Only the standard library and SQLAlchemy, like `gestic.rpa.queue` (the robots' environment
imports it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
)

from gestic.store.db import PortableText, UTCDateTime

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

#: Every file taken into a queue from an inbox (gestic.rpa.intake), by its content: the row is
#: inserted in the transaction that creates the file's item, so a file is worked once, even if a
#: crash leaves it in the inbox or it is dropped again under another name.
intake_table = Table(
    "gestic_rpa_intake",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("item_id", Integer, ForeignKey("gestic_rpa_items.id"), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
)

#: Every scheduled fire of a bot, claimed by the first scheduler that reaches it: with one
#: schedule on several bots hosts, one of them seeds the run (the others wait for its seeding,
#: then help work its queues).
fires_table = Table(
    "gestic_rpa_fires",
    metadata,
    Column("bot", String(64), primary_key=True),
    Column("due_at", UTCDateTime(), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    Column("seeded_at", UTCDateTime(), nullable=True),
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


def utcnow() -> datetime:
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


def item_from_row(row: Row[Any]) -> Item:
    """The record of one row of the items table."""
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
