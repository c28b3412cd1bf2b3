"""Where `gestic rpa run|schedule` get the access report of a bot that reviews it (a manifest
step's `access_report:`): made now, as `gestic access report` makes it (the controller), or
the newest one the controller published into the shared ledger (a bots host, the scheduler).
No `COMMAND` here: `gestic rpa` is `gestic.cli.rpa`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gestic.cli.rpa_context import RpaContext
from gestic.console import console
from gestic.errors import AccessReportError, UsageError
from gestic.procedures.access.make import make_report
from gestic.rpa.access_seed import access_report_step, seed_with_report
from gestic.rpa.manifest import Bot, SeedItem
from gestic.store.ledger import FAILED

__all__ = [
    "FRESH",
    "PUBLISHED",
    "ReportSeed",
    "Source",
    "check_source",
    "report_seed",
    "scheduled_seed",
]

FRESH: Literal["fresh"] = "fresh"
PUBLISHED: Literal["published"] = "published"
Source = Literal["fresh", "published"]


@dataclass(frozen=True, kw_only=True)
class ReportSeed:
    """The first step's items, and what the run records of the report they carry."""

    items: list[SeedItem]
    details: dict[str, Any]


def check_source(rpa: RpaContext, bot: Bot, source: Source) -> None:
    """Refuse, before anything runs, an access report source that cannot serve `bot` here."""
    if access_report_step(bot) is None:
        raise UsageError(
            f"{bot.name}: its first step does not start from an access report "
            "(manifest: access_report)"
        )
    if source == FRESH and rpa.on_bots_host:
        raise UsageError(
            f"{bot.name}: --access-report fresh collects every host's record over SSH, which "
            "a bots host cannot do: use --access-report published (the controller's newest)"
        )


def _fresh(rpa: RpaContext, bot: Bot) -> tuple[dict[str, Any], dict[str, Any]]:
    made = make_report(
        rpa.ctx,
        out_dir=rpa.ctx.artifacts / "access",
        publish=rpa.publish_access_report,
        log=lambda message: console.print(message, markup=False),
    )
    console.print(f"access report: {made.summary}", markup=False)
    if made.report.critical:
        console.print(
            f"[yellow]access report: {len(made.report.critical)} critical findings: "
            f"{bot.name} reviews them[/]"
        )
    about = {"source": FRESH, "access_report_run": made.run_id}
    if made.published is not None:
        about["published"] = made.published.describe()
    return made.json, about


def _published(
    rpa: RpaContext, bot: Bot, now: datetime | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    max_age = timedelta(hours=rpa.settings.access_report_max_age_hours)
    found = rpa.access_reports.recent(rpa.model.environment, max_age=max_age, now=now)
    age_h = found.age(now or datetime.now(UTC)).total_seconds() / 3600
    console.print(
        f"{bot.name}: access report {found.id} of {found.environment}, made at "
        f"{found.generated_at:%Y-%m-%d %H:%M} UTC ({age_h:.1f} h ago)",
        markup=False,
    )
    return found.data, {"source": PUBLISHED, "published": found.describe()}


def report_seed(
    rpa: RpaContext, bot: Bot, source: Source, *, now: datetime | None = None
) -> ReportSeed:
    """The bot's seed with the environment's access report from `source` in it."""
    check_source(rpa, bot, source)
    report, about = _fresh(rpa, bot) if source == FRESH else _published(rpa, bot, now)
    items = seed_with_report(bot, report, rpa.model)
    return ReportSeed(items=items, details={"access_report": about})


def scheduled_seed(rpa: RpaContext, bot: Bot, *, now: datetime | None = None) -> ReportSeed:
    """A scheduled run's seed: the newest published report, never the fixture. Without a
    recent enough one, the run is recorded as failed (`rpa.schedule`) and the error raised."""
    try:
        return report_seed(rpa, bot, PUBLISHED, now=now)
    except AccessReportError as exc:
        ledger = rpa.ctx.ledger
        run_id = ledger.start(kind="rpa.schedule", target=bot.name)
        ledger.finish(
            run_id,
            status=FAILED,
            summary=str(exc),
            details={"access_report": {"source": PUBLISHED, "error": str(exc)}},
        )
        raise
