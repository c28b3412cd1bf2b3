"""Where beneficiaries and loans come from: the `cartera` PostgreSQL database of the site."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from portal.config import DatabaseSettings
from portal.domain import EDITABLE, Beneficiary, Loan


class RepositoryError(RuntimeError):
    """The database could not be reached or refused the operation."""


class Repository(Protocol):
    def ping(self) -> None:
        """Raise RepositoryError unless the database answers."""

    def find_beneficiary(self, document: str) -> Beneficiary | None: ...

    def loans_of(self, document: str) -> list[Loan] | None:
        """The beneficiary's loans, or None if there is no such beneficiary."""

    def update_beneficiary(self, document: str, changes: Mapping[str, str]) -> Beneficiary | None:
        """Apply validated `changes` (keys from EDITABLE); None if there is no such beneficiary."""


_BENEFICIARY_COLUMNS = (
    "document_type, document_number, full_name, email, phone, address, city, updated_at"
)


class PostgresRepository:
    """One short connection per operation: a handful of requests per second needs no pool."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self._settings = settings

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        # imported here so that the unit tests run without psycopg2 (Debian python3-psycopg2)
        import psycopg2  # type: ignore[import-untyped]  # noqa: PLC0415

        s = self._settings
        try:
            conn = psycopg2.connect(
                host=s.host,
                port=s.port,
                dbname=s.name,
                user=s.user,
                password=s.password,
                sslmode=s.sslmode,
                sslrootcert=s.sslrootcert,
                connect_timeout=s.connect_timeout,
                application_name="portal",
            )
        except psycopg2.Error as exc:
            raise RepositoryError(f"cannot connect to {s.host}:{s.port}/{s.name}: {exc}") from exc
        try:
            with conn, conn.cursor() as cur:  # commits on success, rolls back on error
                yield cur
        except psycopg2.Error as exc:
            raise RepositoryError(f"database error: {exc}") from exc
        finally:
            conn.close()

    def ping(self) -> None:
        with self._cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def find_beneficiary(self, document: str) -> Beneficiary | None:
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {_BENEFICIARY_COLUMNS} FROM beneficiaries WHERE document_number = %s",
                (document,),
            )
            row = cur.fetchone()
        return _beneficiary(row) if row else None

    def loans_of(self, document: str) -> list[Loan] | None:
        with self._cursor() as cur:
            cur.execute("SELECT id FROM beneficiaries WHERE document_number = %s", (document,))
            found = cur.fetchone()
            if found is None:
                return None
            cur.execute(
                """
                SELECT l.loan_number, l.program, l.disbursed_on, l.term_months, l.annual_rate,
                       l.amount, l.balance, l.status, count(p.id), max(p.paid_on)
                FROM loans AS l LEFT JOIN payments AS p ON p.loan_id = l.id
                WHERE l.beneficiary_id = %s
                GROUP BY l.id
                ORDER BY l.disbursed_on, l.loan_number
                """,
                (found[0],),
            )
            rows = cur.fetchall()
        return [
            Loan(
                loan_number=r[0],
                program=r[1],
                disbursed_on=r[2],
                term_months=r[3],
                annual_rate=r[4],
                amount=r[5],
                balance=r[6],
                status=r[7],
                payments=r[8],
                last_payment_on=r[9],
            )
            for r in rows
        ]

    def update_beneficiary(self, document: str, changes: Mapping[str, str]) -> Beneficiary | None:
        from psycopg2 import sql  # noqa: PLC0415

        columns = [c for c in EDITABLE if c in changes]  # fixed names, never user input
        if not columns:
            return self.find_beneficiary(document)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in columns
        )
        statement = sql.SQL(
            "UPDATE beneficiaries SET {}, updated_at = now() "
            "WHERE document_number = {} RETURNING " + _BENEFICIARY_COLUMNS
        ).format(assignments, sql.Placeholder("_document"))
        with self._cursor() as cur:
            cur.execute(statement, {**{c: changes[c] for c in columns}, "_document": document})
            row = cur.fetchone()
        return _beneficiary(row) if row else None


def _beneficiary(row: tuple[Any, ...]) -> Beneficiary:
    return Beneficiary(
        document_type=row[0],
        document_number=row[1],
        full_name=row[2],
        email=row[3],
        phone=row[4],
        address=row[5],
        city=row[6],
        updated_at=row[7],
    )
