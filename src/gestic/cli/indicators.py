"""`gestic indicators`: the two indicators of the period side by side, and their reports.

- *Gestión del Servicio de la Infraestructura de Tecnología del ICETEX*: computed from the
  monitoring servers (and recorded in the ledger), or with `--from-ledger` taken from the last
  computation recorded for the period; its report (HTML and JSON) is written.
- *Nivel del servicio RPA*: measured as `gestic rpa report` measures it; an environment
  without RPA (no settings, no bots) says so in its row.

Both go into `indicadores-<period>.json`. Everything is computed before anything is written:
missing monitoring data stops the command with the spans it lacks, and writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from gestic import reports
from gestic.cli.options import lang_option
from gestic.cli.rpa_context import rpa_setup
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import UsageError
from gestic.procedures.monitoring import report
from gestic.procedures.monitoring.indicator import (
    InfraIndicator,
    Period,
    current_month,
    parse_period,
)
from gestic.procedures.monitoring.service import INDICATOR_KIND, infra_indicator, monitoring_of
from gestic.rpa.report import build_data
from gestic.rpa.schedule import timezone
from gestic.rpa.sla import Period as RpaPeriod
from gestic.rpa.sla import measure
from gestic.store.ledger import SUCCEEDED, RunRecord


def _records(ctx: Context) -> list[RunRecord]:
    """The recorded infrastructure indicators of this environment, newest first."""
    runs = ctx.ledger.runs(kind=INDICATOR_KIND, target=ctx.target, limit=10_000)
    return [r for r in runs if r.status == SUCCEEDED]


def _from_ledger(
    records: list[RunRecord], ctx: Context, period: Period
) -> tuple[InfraIndicator, str]:
    """The last recorded indicator of `period`, and which run it is."""
    for run in records:
        if run.details.get("period") == period.label:
            return report.from_record(run.details), f"ledger #{run.id}"
    raise UsageError(
        f"--from-ledger: the ledger has no {INDICATOR_KIND} of {period.label} for "
        f"{ctx.target}: compute it with `gestic indicators --period {period.label}`"
    )


def _rpa(ctx: Context, period: Period, now: datetime) -> tuple[dict[str, Any] | None, str]:
    """The RPA indicator's data (as its report has them), or why there is none."""
    if not period.is_month:
        return None, "a monthly indicator: give --period YYYY-MM"
    setup = rpa_setup(ctx)
    if isinstance(setup, str):
        return None, f"not configured: {setup}"
    settings, bots = setup.settings, setup.bots
    if not bots:
        return None, f"not configured: no bots in {setup.rpa.robots}"
    with setup.open_queue() as queue:
        result = measure(
            queue, bots, RpaPeriod.parse(period.label), tz=timezone(settings.timezone),
            target=settings.target, now=now,
        )  # fmt: skip
    data = build_data(
        result=result, trend=[result], bots=bots, settings=settings,
        environment=ctx.model.environment, generated=now,
    )  # fmt: skip
    return data, ""


def _status(met: bool | None) -> str:
    return "-" if met is None else "[green]met[/]" if met else "[red]MISSED[/]"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _table(indicator: InfraIndicator, source: str, rpa: dict[str, Any] | None, why: str) -> Table:
    table = Table(title=f"indicators {indicator.period.label} ({indicator.environment})")
    for col in ("indicator", "scope", "value", "target", "detail", "status"):
        table.add_column(col)
    met = sum(1 for s in indicator.services if s.met)
    table.add_row(
        "Infraestructura",
        "overall",
        report.percent(indicator.overall),
        report.target(report.overall_target(indicator)),
        f"{met}/{len(indicator.services)} services meet their target ({source})",
        _status(indicator.met if indicator.overall is not None else None),
    )
    for s in indicator.services:
        counted = sum(1 for o in s.outages if not o.excluded)
        table.add_row(
            "",
            f"{s.service} (tier {s.tier})",
            report.percent(s.availability),
            report.target(s.target),
            f"down {report.duration(s.down_s)} in {counted} outages, budget left "
            f"{report.duration(s.budget_left_s)}",
            _status(s.met if s.availability is not None else None),
        )
    if rpa is None:
        table.add_row("RPA", "-", "-", "-", why, "-")
        return table
    overall = rpa["overall"]
    rows = [("overall", overall), *((f"bot {n}", b) for n, b in rpa["bots"].items())]
    for i, (scope, ind) in enumerate(rows):
        breaches = sum(ind["breaches"].values())
        table.add_row(
            "RPA" if i == 0 else "",
            scope,
            _share(ind["value"]),
            _share(rpa["target"]),
            f"{ind['met']}/{ind['items_counted']} items within SLA, {breaches} breaches, "
            f"{ind['business_exceptions']} business exceptions",
            _status(ind["meets_target"]),
        )
    return table


@click.command(name="indicators")
@click.option(
    "--period",
    default=None,
    metavar="YYYY-MM",
    help="The month (or a day, YYYY-MM-DD) in the monitoring's time zone (default: this month).",
)
@lang_option()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the reports (default: artifacts/indicators).",
)
@click.option(
    "--from-ledger",
    is_flag=True,
    help="Take the infrastructure indicator last recorded for the period instead of querying "
    "the monitoring servers.",
)
@click.option("--months", default=6, show_default=True, help="Months in the trend chart.")
@click.option(
    "--accept-gaps",
    is_flag=True,
    help="Compute over the measured time only when the monitoring lacks data for part of the "
    "period (the report names the gaps); without it the command refuses.",
)
@click.pass_obj
def COMMAND(
    obj: Context, period: str | None, lang: str, output: Path | None, from_ledger: bool,
    months: int, accept_gaps: bool,
) -> None:  # fmt: skip
    """Both indicators of a period; writes the infrastructure report and indicadores-*.json."""
    language = reports.check_lang(lang, UsageError)
    zone = monitoring_of(obj).zone
    chosen = parse_period(period or current_month(zone), zone)
    now = datetime.now(UTC)
    records = _records(obj)
    if from_ledger:
        indicator, source = _from_ledger(records, obj, chosen)
    else:
        indicator = infra_indicator(obj, chosen, now=now, accept_gaps=accept_gaps)
        source = "monitoring"
    rpa, why = _rpa(obj, chosen, now)
    trend = report.monthly_trend([r.details for r in records], indicator, months)
    console.print(_table(indicator, source, rpa, why))
    out_dir = output or obj.artifacts / "indicators"
    json_path, html_path = report.write_report(
        indicator, out_dir, lang=language, trend=trend, generated=now
    )
    combined = {
        "period": chosen.label,
        "environment": indicator.environment,
        "generated_at": now.isoformat(),
        "infraestructura": {
            **report.build_data(indicator, trend),
            "source": source,
            "report": {"html": html_path.name, "json": json_path.name},
        },
        "rpa": rpa if rpa is not None else {"indicator": "Nivel del servicio RPA", "reason": why},
    }
    both = reports.write_json(out_dir / f"indicadores-{chosen.label}.json", combined)
    console.print(f"wrote {html_path}\nwrote {json_path}\nwrote {both}")
