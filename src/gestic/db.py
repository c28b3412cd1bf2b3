"""The SQLAlchemy plumbing shared by the run ledger and the work-item queue.

Both keep their tables behind one SQLAlchemy URL (SQLite by default, PostgreSQL when shared)
and need the same things from it: an engine set up for several processes at once (SQLite in
WAL mode with a busy timeout, PostgreSQL with pre-ping), the URL with its password masked for
messages, and SQLAlchemy's errors turned into the caller's own error class.

This module imports only the standard library and SQLAlchemy: the robots' work-item adapter
imports it (through `gestic.rpa.queue`) inside the robots' own environment, where nothing
else of gestic's dependencies is installed. The caller passes its error class in, so this
module does not import `gestic.errors` either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import URL, DateTime, Dialect, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

__all__ = [
    "READ_ONLY_OPTION",
    "SQLITE_BUSY_TIMEOUT_S",
    "UTCDateTime",
    "cause",
    "make_engine",
    "masked",
    "reraise",
]

#: How long a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_S: Final = 30.0
#: Execution option that marks a read-only engine view (`engine.execution_options(...)`): with
#: `make_engine(..., write_lock=True)` its transactions take no write lock on SQLite.
READ_ONLY_OPTION: Final = "gestic_read_only"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as a timezone-aware UTC datetime.

    SQLite has no timezone support and returns naive values: those are UTC by construction.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger only stores aware timestamps")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def masked(url: str | URL) -> str:
    """`url` with its password hidden, for messages and reprs ("<unparsable URL>" if invalid)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def cause(exc: BaseException) -> str:
    """The first line of what went wrong: the DB-API error behind a SQLAlchemy error, if any."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def reraise(error: Callable[[str], Exception], message: str) -> Iterator[None]:
    """Run the body; a SQLAlchemyError in it is raised as ``error(f"{message}: {cause}")``.

    `message` should say which database (its `masked` URL) and what could not be done, e.g.
    ``reraise(LedgerError, f"run ledger at {display_url}: cannot list runs")``. The original
    error stays chained as ``__cause__``.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise error(f"{message}: {cause(exc)}") from exc


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_pragmas_own_transactions(dbapi_connection: Any, connection_record: Any) -> None:
    # Let SQLAlchemy's "begin" event open the transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    _sqlite_pragmas(dbapi_connection, connection_record)


def _sqlite_begin(conn: Any) -> None:
    # Writers: BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a
    # deferred transaction that reads and then writes can fail at once in WAL mode when
    # another process wrote in between, which would make claims fail under contention.
    # Readers (an engine view with READ_ONLY_OPTION) take no lock, so polling never waits.
    if conn.get_execution_options().get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(
    url: str,
    *,
    what: str,
    error: Callable[[str], Exception],
    metadata: MetaData | None = None,
    json_serializer: Callable[[Any], str] | None = None,
    write_lock: bool = False,
) -> Engine:
    """An engine for `url`, ready for several processes, with `metadata`'s tables created.

    SQLite: connections wait up to SQLITE_BUSY_TIMEOUT_S for a lock and use WAL mode; with
    `write_lock`, every transaction begins with BEGIN IMMEDIATE (the write lock up front)
    except on an engine view with ``execution_options(gestic_read_only=True)``
    (READ_ONLY_OPTION). Other databases: connections are pinged before use.

    `what` names the database in messages ("run ledger"): an unusable URL (bad syntax, no
    such dialect or driver) raises ``error("cannot use the <what> at <masked url>: ...")``,
    a database that cannot be opened ``error("cannot open the <what> at <masked url>: ...")``.
    """
    display = masked(url)
    try:
        sa_url = make_url(url)
        kwargs: dict[str, Any] = {}
        if json_serializer is not None:
            kwargs["json_serializer"] = json_serializer
        is_sqlite = sa_url.get_backend_name() == "sqlite"
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(sa_url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise error(f"cannot use the {what} at {display}: {cause(exc)}") from exc
    if is_sqlite:
        if write_lock:
            event.listen(engine, "connect", _sqlite_pragmas_own_transactions)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            event.listen(engine, "connect", _sqlite_pragmas)
    if metadata is not None:
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            hint = " (does its directory exist and is it writable?)" if is_sqlite else ""
            raise error(f"cannot open the {what} at {display}{hint}: {cause(exc)}") from exc
    return engine
