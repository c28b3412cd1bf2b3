"""What the RPA lab tests share: the bots hosts, the scheduler's account, the lab's loans."""

from __future__ import annotations

import json
import shlex

from gestic.environments.context import Context

from .labkit import on_host

DATABASE = "db-p1"
BOTS_HOST = "svc-p1"
#: The bots host of the DR site: it works the same queues as BOTS_HOST.
DR_BOTS_HOST = "web-a1"
BANK = "banco-aliado"
INBOX = f"/srv/sftp/{BANK}"
#: A gestic command on a bots host as its scheduler runs it: its account, environment, release.
AS_SCHEDULER = (
    "runuser -u gestic-rpa -- sh -c "
    + shlex.quote('set -a; . /etc/gestic/rpa-scheduler.env; cd /opt/gestic/src; exec "$@"')
    + " gestic /opt/gestic/venv/bin/python -m gestic"
)


def lab_loans(ctx: Context) -> dict[str, dict[str, str]]:
    """One loan of each status from db-p1: document, loan number, balance."""
    query = (
        "SELECT json_object_agg(status, json_build_object('documento', doc, 'credito', loan, "
        "'saldo', balance::text)) FROM (SELECT DISTINCT ON (l.status) l.status, "
        "b.document_number AS doc, l.loan_number AS loan, l.balance FROM loans AS l "
        "JOIN beneficiaries AS b ON b.id = l.beneficiary_id "
        "ORDER BY l.status, l.loan_number) AS picked"
    )
    out = on_host(
        ctx, DATABASE, f"runuser -u postgres -- psql -X -At -d cartera -c {shlex.quote(query)}"
    )
    loans: dict[str, dict[str, str]] = json.loads(out)
    return loans


def ledger_query(ctx: Context, sql: str) -> str:
    """One query on the shared ledger's database (`gestic` on db-p1), as postgres; its rows."""
    return on_host(
        ctx, DATABASE, f"runuser -u postgres -- psql -X -At -d gestic -c {shlex.quote(sql)}"
    )
