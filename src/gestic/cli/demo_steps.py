"""The demo's later phases: back up, drill, robots, reports.

Each step invokes the same `gestic` subcommand a person would run, so the demo prints what they
print, records what they record in the ledger and fails where they fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import click

from gestic.cli import (
    access,
    backup,
    drill,
    incidents,
    indicators,
    logs,
    reports,
    rpa,
    vulnscan,
)
from gestic.cli.rpa_context import RpaContext
from gestic.environments.context import Context
from gestic.procedures.dr.plan import PLAN_FILE, load_plan

Step = tuple[str, Callable[[], None]]
DEMO_BOTS = {"conciliacion-pagos": False, "actualizacion-datos": True, "revision-accesos": False}
"""Bots the demo runs, in order, and whether each works inside the lab's network: the browser
bot updates the real portal on web-p1; the other two work on their files (devdata), except
that the access review reviews a fresh access report of the lab (DEMO_BOT_OPTIONS)."""
DEMO_BOT_OPTIONS: dict[str, dict[str, object]] = {"revision-accesos": {"access_report": "fresh"}}


def for_phase(phase: str, click_ctx: click.Context, obj: Context) -> list[Step]:
    builders = {"backup": _backup, "drill": _drill, "robots": _robots, "reports": _reports}
    return builders[phase](click_ctx, obj)


def _invoke(click_ctx: click.Context, command: click.Command, **params: object) -> None:
    click_ctx.invoke(command, **params)


def _backup(click_ctx: click.Context, obj: Context) -> list[Step]:
    plan = load_plan(obj.root / PLAN_FILE, obj.model)
    services = plan.restored_services()  # the RPA service has no backup of its own
    tier1 = [s for s in services if obj.model.services[s].tier == 1]

    def run_all() -> None:
        for service in services:
            _invoke(click_ctx, backup.run_cmd, service=service)

    def check_all() -> None:
        for service in services:
            _invoke(click_ctx, backup.check_cmd, service=service, subset=False)

    def verify_tier1() -> None:
        for service in tier1:
            _invoke(click_ctx, backup.verify_cmd, service=service, plan_path=None)

    return [
        (f"back up every service now ({', '.join(services)})", run_all),
        ("check every backup repository (restic check, reading the data)", check_all),
        (f"verify a restore of the tier-1 services ({', '.join(tier1)})", verify_tier1),
    ]


def _drill(click_ctx: click.Context, obj: Context) -> list[Step]:
    def site_loss_test() -> None:
        _invoke(click_ctx, drill.COMMAND, scenario="site-loss", test=True, auto_approve=True)

    return [("DR drill: loss of the primary site, in test mode (evidence in dr/)", site_loss_test)]


def _robots(click_ctx: click.Context, obj: Context) -> list[Step]:
    def run(bot: str, in_lab: bool) -> Callable[[], None]:
        def action() -> None:
            with click.Context(rpa.COMMAND, parent=click_ctx, obj=RpaContext(obj, None)) as sub:
                sub.invoke(rpa.run, bot_name=bot, in_lab=in_lab, **DEMO_BOT_OPTIONS.get(bot, {}))

        return action

    where = {True: "against the lab's portal", False: "on its files"}
    return [
        (f"robot {bot}: seed its queue and work it {where[in_lab]}", run(bot, in_lab))
        for bot, in_lab in DEMO_BOTS.items()
    ]


#: `gestic indicators` as the demo runs it: this month, Spanish, the default output, 6 months;
#: a lab that was stopped earlier this month has gaps, which its report names.
_INDICATOR_OPTIONS: dict[str, object] = {
    "period": None, "lang": "es", "output": None, "from_ledger": False, "months": 6,
    "accept_gaps": True,
}  # fmt: skip


def _reports(click_ctx: click.Context, obj: Context) -> list[Step]:
    period = date.today().strftime("%Y-%m")

    def rpa_report() -> None:
        with click.Context(rpa.COMMAND, parent=click_ctx, obj=RpaContext(obj, None)) as sub:
            sub.invoke(rpa.report, period=period)

    return [
        (f"RPA service level report ({period})", rpa_report),
        (
            f"log review ({period})",
            lambda: _invoke(click_ctx, logs.review_command, period=period),
        ),
        (
            "access report (who has access to what, per host)",
            lambda: _invoke(click_ctx, access.report),
        ),
        ("vulnerability test report (lynis)", lambda: _invoke(click_ctx, vulnscan.report)),
        (
            "incidents: the monitoring's alerts and the ledger's breaches",
            lambda: _invoke(click_ctx, incidents.sync, since=None),
        ),
        (
            f"both indicators of {period}: infrastructure (from Prometheus) and RPA",
            lambda: _invoke(click_ctx, indicators.COMMAND, **_INDICATOR_OPTIONS),
        ),
        (
            "index of the latest reports",
            lambda: _invoke(click_ctx, reports.index, lang="es", output=None, evidence_dir=None),
        ),
    ]
