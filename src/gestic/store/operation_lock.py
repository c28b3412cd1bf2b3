"""One change at a time per environment, whoever runs it: a lease kept in the run ledger's database.

Several engineers and CI run gestic against the same hosts. Two converges, or a drill and a
converge, at once would interleave their changes (a drill's isolation rules found by another
drill's cleanup was measured on the lab). Every command that changes hosts holds the
environment's lock for its whole run; a second one is refused at once (or waits, with
`--wait`/GESTIC_LOCK_WAIT) with who holds it, what they run and since when.

The lock lives where every operator of an environment already meets: the run ledger's database
(GESTIC_LEDGER_URL; PostgreSQL when shared by several machines, the state dir's SQLite file for
one machine). It is a row per lock name, inserted under the table's primary key, so of two
processes racing for it exactly one wins on any database. The holder renews it every
`heartbeat_s`; a lock not renewed for `ttl_s` (its holder died, or lost its connection) is taken
over, and on the holder's own machine a holder whose process is gone is taken over at once, so a
killed run never blocks the next one (PID and process start time are compared, so a reused PID is
never mistaken for the holder).

Holding is reentrant within one process: the demo holds the lock and its steps (converge,
backup, drill) take it again without waiting on themselves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Column, Integer, MetaData, Table, Text, delete, insert, select, update
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from gestic.errors import LedgerError, OperationLockedError
from gestic.store import db

LOCK_WAIT_ENV: Final = "GESTIC_LOCK_WAIT"
TTL_S: Final = 60.0
HEARTBEAT_S: Final = 10.0
_POLL_S: Final = 2.0

metadata = MetaData()
locks_table = Table(
    "operation_locks",
    metadata,
    Column("name", Text, primary_key=True),
    Column("token", Text, nullable=False),
    Column("what", db.PortableText, nullable=False),
    Column("user", Text, nullable=False),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_start", Text, nullable=False),  # /proc/<pid>/stat start time: PIDs are reused
    Column("acquired_at", db.UTCDateTime, nullable=False),
    Column("renewed_at", db.UTCDateTime, nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class Holder:
    """Who holds a lock, as recorded in its row."""

    name: str
    what: str
    user: str
    hostname: str
    pid: int
    pid_start: str
    acquired_at: datetime
    renewed_at: datetime

    def describe(self, now: datetime) -> str:
        since = self.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        seen = max(0, int((now - self.renewed_at).total_seconds()))
        return (
            f"'{self.what}' by {self.user} on {self.hostname} (pid {self.pid}) since {since}, "
            f"last renewed {seen} s ago"
        )


def lock_wait_s(option: float | None = None) -> float:
    """Seconds to wait for a busy lock: `option`, else GESTIC_LOCK_WAIT, else 0 (refuse)."""
    if option is not None:
        value, where = option, "--wait"
    else:
        raw = os.environ.get(LOCK_WAIT_ENV, "").strip()
        if not raw:
            return 0.0
        where = LOCK_WAIT_ENV
        try:
            value = float(raw)
        except ValueError:
            raise OperationLockedError(f"{where}: not a number of seconds: {raw!r}") from None
    if not value >= 0:  # also refuses NaN
        raise OperationLockedError(f"{where}: seconds must be 0 or more, not {value}")
    return value


def _pid_start(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def _holder(row: RowMapping) -> Holder:
    return Holder(**{str(key): value for key, value in row.items() if key != "token"})


class OperationLocks:
    """The locks of the database at `url` (the run ledger's)."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = TTL_S,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 0 < heartbeat_s < ttl_s:
            raise ValueError(
                f"heartbeat ({heartbeat_s} s) must be above 0 and below ttl ({ttl_s} s)"
            )
        self.display_url = db.masked(url)
        self._ttl = timedelta(seconds=ttl_s)
        self._heartbeat_s = heartbeat_s
        self._now = clock
        self._engine: Engine = db.make_engine(
            url, what="operation locks", error=LedgerError, metadata=metadata
        )
        self._held: dict[str, tuple[str, int]] = {}  # name -> (token, depth), this process
        self._mutex = threading.Lock()
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        self._pid_start = _pid_start(self._pid) or "?"

    def close(self) -> None:
        self._engine.dispose()

    def _guard(self, action: str) -> contextlib.AbstractContextManager[None]:
        return db.reraise(LedgerError, f"operation locks at {self.display_url}: cannot {action}")

    def holders(self) -> list[Holder]:
        """Every lock held (or left behind by a holder that died), by name."""
        with self._guard("list the locks"), self._engine.connect() as conn:
            rows = conn.execute(select(locks_table).order_by(locks_table.c.name)).all()
        return [_holder(row._mapping) for row in rows]

    def _stale(self, holder: Holder, now: datetime) -> bool:
        if now - holder.renewed_at > self._ttl:
            return True
        # On the holder's own machine its process is asked directly: gone (or its PID reused)
        # means the run died without releasing.
        return holder.hostname == self._hostname and _pid_start(holder.pid) != holder.pid_start

    def _try_take(self, name: str, what: str, user: str) -> Holder | None:
        """Take the lock and return None, or return who holds it."""
        token = secrets.token_hex(16)
        now = self._now()
        row = {
            "name": name,
            "token": token,
            "what": what,
            "user": user,
            "hostname": self._hostname,
            "pid": self._pid,
            "pid_start": self._pid_start,
            "acquired_at": now,
            "renewed_at": now,
        }
        with self._guard(f"take the lock {name}"):
            with self._engine.begin() as conn:
                found = conn.execute(
                    select(locks_table).where(locks_table.c.name == name)
                ).one_or_none()
                if found is not None:
                    holder = _holder(found._mapping)
                    if not self._stale(holder, now):
                        return holder
                    # Taken over only if it is still that very stale row (another waiter may
                    # have taken it over a moment ago).
                    conn.execute(
                        delete(locks_table).where(
                            locks_table.c.name == name, locks_table.c.token == found.token
                        )
                    )
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(locks_table).values(**row))
            except IntegrityError:  # somebody else inserted it first: read who, next time
                return self._current(name) or self._try_take(name, what, user)
        with self._mutex:
            self._held[name] = (token, 1)
        return None

    def _current(self, name: str) -> Holder | None:
        return next((h for h in self.holders() if h.name == name), None)

    def _renew(self, name: str, token: str) -> bool:
        with self._guard(f"renew the lock {name}"), self._engine.begin() as conn:
            result = conn.execute(
                update(locks_table)
                .where(locks_table.c.name == name, locks_table.c.token == token)
                .values(renewed_at=self._now())
            )
        return result.rowcount == 1

    def _release(self, name: str, token: str) -> None:
        with self._guard(f"release the lock {name}"), self._engine.begin() as conn:
            conn.execute(
                delete(locks_table).where(locks_table.c.name == name, locks_table.c.token == token)
            )

    @contextlib.contextmanager
    def hold(
        self,
        name: str,
        *,
        what: str,
        user: str,
        wait_s: float = 0.0,
        say: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Hold lock `name` for the body; OperationLockedError if another holds it past `wait_s`."""
        with self._mutex:
            mine = self._held.get(name)
            if mine is not None:
                self._held[name] = (mine[0], mine[1] + 1)
        if mine is not None:
            try:
                yield
            finally:
                with self._mutex:
                    token, depth = self._held[name]
                    self._held[name] = (token, depth - 1)
            return
        deadline = time.monotonic() + wait_s
        announced = False
        while (holder := self._try_take(name, what, user)) is not None:
            if time.monotonic() >= deadline:
                hint = (
                    f"waited {wait_s:g} s; " if wait_s else "give --wait SECONDS to wait for it; "
                )
                raise OperationLockedError(
                    f"{name} is busy: {holder.describe(self._now())} ({hint}a holder that died "
                    f"is taken over after {self._ttl.total_seconds():g} s without renewal; "
                    f"locks in {self.display_url})"
                )
            if say is not None and not announced:
                say(f"waiting for {name}: {holder.describe(self._now())}")
                announced = True
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        token = self._held[name][0]
        stop = threading.Event()
        lost: list[str] = []

        def renew() -> None:
            while not stop.wait(self._heartbeat_s):
                try:
                    if not self._renew(name, token):
                        lost.append(f"{name} was taken over by another run while held")
                        return
                except LedgerError as exc:  # a blip: keep trying until the ttl says otherwise
                    lost.append(str(exc))

        keeper = threading.Thread(target=renew, name=f"lock-{name}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()
            with self._mutex:
                del self._held[name]
            self._release(name, token)
            if lost and say is not None:
                say(f"warning: {lost[-1]}")
