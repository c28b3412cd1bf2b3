"""The SQLAlchemy plumbing shared by the run ledger and the work-item queue.

Both keep their tables behind one SQLAlchemy URL (SQLite by default, PostgreSQL when shared)
and need the same things from it: an engine set up for several processes at once (SQLite in
WAL mode with a busy timeout, PostgreSQL with pre-ping), the URL with its password masked for
messages, and SQLAlchemy's errors turned into the caller's own error class.

PostgreSQL goes through psycopg 3 (`postgresql+psycopg://user:password@host:port/database`);
a plain `postgresql://` URL means psycopg 3 too unless psycopg2 (SQLAlchemy 2.0's default
driver for it; 2.1's is psycopg 3) is installed.

This module imports only the standard library and SQLAlchemy: the robots' work-item adapter
imports it (through `gestic.rpa.queue`) inside the robots' own environment, where nothing
else of gestic's dependencies is installed. The caller passes its error class in, so this
module does not import `gestic.errors` either.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    URL,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    Text,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

__all__ = [
    "READ_ONLY_OPTION",
    "SQLITE_BUSY_TIMEOUT_S",
    "PortableText",
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
PSYCOPG_HINT: Final = (
    "gestic reaches PostgreSQL with psycopg 3: `pip install 'psycopg[binary]'` and a URL "
    "postgresql+psycopg://user:password@host:port/database"
)
#: PostgreSQL advisory lock held while the tables are created ("gestic" in ASCII, then 1).
SCHEMA_LOCK_KEY: Final = 0x67657374696301
_CREATE_ATTEMPTS: Final = 3


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


class PortableText(TypeDecorator[str]):
    """Text that any database stores: NUL characters (PostgreSQL refuses them in text, SQLite
    keeps them) are stored as U+FFFD on PostgreSQL. For free text from outside (error
    messages, summaries), where one stray byte must not lose the whole record."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


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


def _with_driver(url: URL) -> URL:
    """`postgresql://` with psycopg 3 when psycopg2 (SQLAlchemy 2.0's default) is missing."""
    if (
        url.drivername == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return url.set(drivername="postgresql+psycopg")
    return url


def _scrubbed(message: str, url: URL) -> str:
    # Drivers do not echo passwords in their errors; this makes sure of it.
    if url.password:
        return message.replace(str(url.password), "***")
    return message


def _create_tables(engine: Engine, metadata: MetaData) -> None:
    # Several processes (on several hosts) may open a new database at once: the second
    # CREATE TABLE of a table would fail.
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            metadata.create_all(conn)
        return
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            metadata.create_all(engine)
            return
        except SQLAlchemyError:  # another process created a table since we looked: look again
            if attempt == _CREATE_ATTEMPTS - 1:
                raise


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
    (READ_ONLY_OPTION). Other databases: connections are pinged before use; on PostgreSQL
    the tables are created under an advisory lock (several processes may open a new
    database at once), and `postgresql://` means psycopg 3 when psycopg2 is not installed.

    `what` names the database in messages ("run ledger"): an unusable URL (bad syntax, no
    such dialect or driver) raises ``error("cannot use the <what> at <masked url>: ...")``,
    a database that cannot be opened ``error("cannot open the <what> at <masked url>: ...")``.
    """
    display = masked(url)
    sa_url: URL | None = None
    try:
        sa_url = _with_driver(make_url(url))
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
        hint = ""
        if sa_url is not None and sa_url.get_backend_name() == "postgresql":
            hint = f" ({PSYCOPG_HINT})"
        reason = _scrubbed(cause(exc), sa_url) if sa_url is not None else cause(exc)
        raise error(f"cannot use the {what} at {display}: {reason}{hint}") from exc
    if is_sqlite:
        if write_lock:
            event.listen(engine, "connect", _sqlite_pragmas_own_transactions)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            event.listen(engine, "connect", _sqlite_pragmas)
    if metadata is not None:
        try:
            _create_tables(engine, metadata)
        except SQLAlchemyError as exc:
            engine.dispose()
            hint = " (does its directory exist and is it writable?)" if is_sqlite else ""
            reason = _scrubbed(cause(exc), sa_url)
            raise error(f"cannot open the {what} at {display}{hint}: {reason}") from exc
    return engine
