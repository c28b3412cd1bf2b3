"""The model's RPA section (gestic_rpa): the service level's target, the schedules, the
partners' inboxes, the bots' variables per environment and the shared ledger."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints

from gestic.model.base import Frozen as _Frozen
from gestic.model.base import Name, TimeZoneName

# --- robotic process automation (gestic_rpa) ------------------------------------------------

BotName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
"""A bot's name: its directory under robots/."""
RelativePath = Annotated[str, StringConstraints(pattern=r"^[\w-][\w./-]*$")]
"""A relative path (letters, digits, `_`, `-`, `.` and `/`; not starting with `/` or `.`)."""


InboxName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]
"""An inbox's name, as the bots' manifests use it (a step's `inbox:`)."""
FolderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""One folder of an SFTP account (no `/`, no `..`)."""
RobotVariable = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]
SftpAccount = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
"""An SFTP account's name, as the sftp role allows it."""


class Inbox(_Frozen):
    """A partner's SFTP folder whose files become a bot's work items (role sftp)."""

    partner: SftpAccount
    """The partner's SFTP account on the transfer service's host (sftp_partners)."""
    folder: FolderName = "entrada"
    processed: FolderName = "procesados"
    """Where a taken file is moved, beside `folder` in the partner's chroot."""


class Intake(_Frozen):
    """How the bots take partners' files: the transfer service whose host holds the SFTP
    accounts, the collector account they log in as (its key is in the environment's secrets),
    how long a file must stay unchanged before it is taken, and the inboxes by name."""

    service: Name = "transferencia"
    account: SftpAccount = "rpa-colector"
    settle_seconds: float = Field(default=30, ge=0)
    inboxes: dict[InboxName, Inbox] = Field(default_factory=dict)


SqlName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
"""A PostgreSQL database or role name: a lowercase SQL identifier."""


def _absent_if_empty(value: Any) -> Any:
    """`ledger:` left empty (null, {} or "") is no shared ledger: the SQLite default."""
    return None if value in (None, "", {}) else value


class RpaLedger(_Frozen):
    """Where the RPA work-item queue and the scheduler's run ledger live when they are shared:
    database `database` on the PostgreSQL service `service` (its first host, on the port of
    its postgresql probe), reached as the login role `role`, whose password is the custodian's
    `gestic_database_passwords.<role>`. The bots hosts connect to it directly; the controller
    through an SSH port forward to a bots host (docs/rpa.md)."""

    service: Name
    database: SqlName = "gestic"
    role: SqlName = "gestic"


class Rpa(_Frozen):
    """The RPA service level's target (items done within their SLA / items due), the window
    the at-risk forecast measures the handling rate over, the schedules' time zone, the bots
    `gestic rpa schedule` runs (empty: every bot), the inventory the bots host reads, the
    partners' inboxes, the bots' variables in this environment and where the queue and
    ledger live when shared (`ledger`; absent: SQLite in each state dir)."""

    target: float = Field(gt=0, le=1)
    at_risk_window_minutes: float = Field(default=60, gt=0)
    timezone: TimeZoneName = "America/Bogota"
    bots: tuple[BotName, ...] = ()
    scheduler_inventory: RelativePath | None = None
    """The inventory directory (relative to the release) the bots host's scheduler reads
    (default, the rpa_scheduler role's: inventory/production)."""
    intake: Intake = Intake()
    variables: dict[BotName, dict[RobotVariable, str]] = Field(default_factory=dict)
    """Robot variables per bot in this environment, over its manifest's. `{service}` in a
    value is that service's address (its first host's), e.g. `http://{portal}`."""
    ledger: Annotated[RpaLedger | None, BeforeValidator(_absent_if_empty)] = None
    access_report_max_age_hours: float = Field(default=36, gt=0)
    """A scheduled run of a bot that reviews the access report (a manifest step's
    `access_report:`) starts from the newest report `gestic access report` published into the
    shared ledger, if it is not older than this; else the run fails."""
