"""`gestic vulnscan`: vulnerability tests of the hosts (lynis) and their report."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError
from gestic.procedures.vulnscan.report import (
    Status,
    VulnscanReport,
    collect,
    load_threshold,
    write_report,
)
from gestic.reports import Lang

_STYLE = {Status.PASSED: "green", Status.FAILED: "red", Status.MISSING: "yellow"}


@click.group(name="vulnscan")
def COMMAND() -> None:
    """Vulnerability tests with lynis (Procedimiento Pruebas de Vulnerabilidad)."""


def _reports_dir(obj: Context) -> Path:
    """Where the vulnscan role puts each host's report (<artifacts>/vulnscan/<host>/)."""
    return obj.artifacts / "vulnscan"


def _report(obj: Context, *, lang: Lang, output: Path | None, min_index: int | None) -> None:
    """Build, print and write the report, and record it in the ledger."""
    threshold = load_threshold(obj.model) if min_index is None else min_index
    out_dir = output or obj.artifacts / "vulnscan"
    with obj.ledger.record(kind="vulnscan.report", target=obj.model.environment) as run:
        report = collect(obj.model, _reports_dir(obj), threshold=threshold)
        paths = write_report(report, out_dir, lang=lang)
        run.changed = 0
        run.summary = (
            f"minimum {threshold}: {report.count(Status.PASSED)} passed, "
            f"{report.count(Status.FAILED)} failed, {report.count(Status.MISSING)} missing"
        )
        run.add_details(
            threshold=threshold,
            files=[str(p) for p in paths],
            hosts={
                h.host: {
                    "status": h.status.value,
                    "hardening_index": h.report.hardening_index if h.report else None,
                    "warnings": len(h.report.warnings) if h.report else None,
                }
                for h in report.hosts
            },
        )
        if not report.ok:
            run.fail(run.summary)
    _print(report)
    for path in paths:
        console.print(f"wrote {path}")
    if not report.ok:
        bad = [h.host for h in report.hosts if h.status is not Status.PASSED]
        raise GesticError(
            f"vulnerability test not passed on: {', '.join(bad)} (minimum index {threshold})"
        )


def _print(report: VulnscanReport) -> None:
    table = Table(title=f"vulnscan {report.environment}: minimum index {report.threshold}")
    for col in ("host", "site", "index", "result", "scanned", "warnings", "suggestions"):
        table.add_column(col)
    for h in report.hosts:
        r = h.report
        table.add_row(
            h.host,
            h.site,
            str(r.hardening_index) if r else "-",
            f"[{_STYLE[h.status]}]{h.status.value}[/]",
            f"{r.finished:%Y-%m-%d %H:%M}" if r and r.finished else "-",
            str(len(r.warnings)) if r else "-",
            str(len(r.suggestions)) if r else "-",
        )
    console.print(table)


_lang_option = lang_option("Language of the HTML report (es: Spanish, en: English).")
_output_option = click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for vulnscan-report.json and .html (default: artifacts/vulnscan).",
)
_min_index_option = click.option(
    "--min-index",
    type=click.IntRange(0, 100),
    default=None,
    help="Minimum hardening index (default: gestic_vulnscan.min_index of the inventory).",
)


@COMMAND.command()
@_lang_option
@_output_option
@_min_index_option
@click.pass_obj
def report(obj: Context, lang: str, output: Path | None, min_index: int | None) -> None:
    """Report the hosts' last lynis results: index, minimum, pass/fail, warnings, suggestions."""
    _report(obj, lang=cast(Lang, lang), output=output, min_index=min_index)


@COMMAND.command()
@click.option("--limit", default=None, help="Only these hosts or groups (Ansible pattern).")
@_lang_option
@_output_option
@click.pass_obj
def scan(obj: Context, limit: str | None, lang: str, output: Path | None) -> None:
    """Scan the hosts now (however recent their last scan), then write the report."""
    threshold = load_threshold(obj.model)  # a bad setting stops before any scan
    with (
        obj.exclusive("vulnscan scan"),
        obj.ledger.record(kind="vulnscan.scan", target=obj.target) as run,
    ):
        result = obj.run_playbook(
            limit=limit,
            tags="vulnscan",
            extravars={"vulnscan_max_age_hours": 0},
            on_event=lambda line: console.print(line, markup=False, soft_wrap=True),
        )
        run.changed = result.changed
        run.summary = f"{len(result.per_host)} hosts scanned, failed={result.failed_hosts}"
        run.add_details(per_host=result.per_host, threshold=threshold)
        if not result.ok:
            run.fail(run.summary)
    _report(obj, lang=cast(Lang, lang), output=output, min_index=None)
