"""`gestic maintenance`: approved maintenance windows, which the infrastructure indicator leaves
out (the model's `gestic_monitoring.maintenance_windows` and the windows recorded here)."""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import UsageError
from gestic.procedures.monitoring import service


def _when(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: expected an ISO time, e.g. 2026-12-05T22:00-05:00"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(f"{option} {value!r}: give the UTC offset (…T22:00-05:00)")
    return parsed


@click.group(name="maintenance")
def COMMAND() -> None:
    """Approved maintenance windows (Control de Cambios): not counted as unavailability."""


@COMMAND.command(name="record")
@click.option(
    "--start", required=True, help="Start, ISO time with offset (2026-12-05T22:00-05:00)."
)
@click.option("--end", required=True, help="End, ISO time with offset.")
@click.option(
    "--service", "services", multiple=True, help="A service it covers (repeat; none: all)."
)
@click.option("--reason", required=True, help="What the maintenance does.")
@click.option("--change", default=None, help="The change request that approved it (e.g. CHG-123).")
@click.pass_obj
def record(
    obj: Context, start: str, end: str, services: tuple[str, ...], reason: str, change: str | None
) -> None:
    """Record an approved maintenance window in the ledger."""
    run_id = service.record_maintenance(
        obj, start=_when(start, "--start"), end=_when(end, "--end"), services=services,
        reason=reason, change=change,
    )  # fmt: skip
    console.print(f"recorded maintenance window (ledger run {run_id})")


@COMMAND.command(name="list")
@click.pass_obj
def list_windows(obj: Context) -> None:
    """The maintenance windows in force (model and ledger)."""
    zone = service.monitoring_of(obj).zone
    table = Table(title=f"maintenance windows of {obj.model.environment}")
    for col in ("start", "end", "services", "reason", "change", "from"):
        table.add_column(col)
    for w in service.windows(obj):
        table.add_row(
            w.start.astimezone(zone).isoformat(timespec="minutes"),
            w.end.astimezone(zone).isoformat(timespec="minutes"),
            ", ".join(w.services) or "all",
            w.reason,
            w.change or "",
            w.origin,
        )
    console.print(table)
