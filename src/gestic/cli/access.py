"""`gestic access report`: the access inventory, from every host's record and the declarations."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.cli.rpa_context import RpaContext
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError
from gestic.procedures.access.make import make_report
from gestic.procedures.access.report import AccessReport

_STATUS_STYLE = {
    "access": "green",
    "locked": "dim",
    "not_locked": "bold red",
    "absent": "dim",
    "unknown": "yellow",
}


@click.group(name="access")
def COMMAND() -> None:
    """People's access to the hosts (Gestión de Accesos y Retiro de Servicios)."""


def _print(report: AccessReport, lang: str) -> None:
    hosts = [h.name for h in report.hosts]
    table = Table(title=f"access: {report.environment} ({report.today.isoformat()})")
    table.add_column("person")
    table.add_column("state")
    for name in hosts:
        table.add_column(name)
    for p in report.people:
        cells = [f"[{_STATUS_STYLE[p.hosts[h]]}]{p.hosts[h]}[/]" for h in hosts]
        table.add_row(p.username, p.state, *cells)
    console.print(table)
    for f in report.findings:
        colour = {"critical": "red", "warning": "yellow", "info": "blue"}[f.severity]
        who = f" {f.username}" if f.username else ""
        console.print(f"[{colour}]{f.severity}[/] {f.host}{who}: {f.message(lang)}", markup=True)
    for warning in report.warnings:
        console.print(f"[yellow]model warning[/] {warning}")


@COMMAND.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the report files (default: <state>/artifacts/access).",
)
@lang_option("Language of the HTML report and the findings' messages.")
@click.option(
    "--records",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the hosts' records from access-<host>.json files in this directory instead of "
    "collecting them over SSH (e.g. the records/ of an earlier report).",
)
@click.option(
    "--publish/--no-publish",
    default=None,
    help="Publish the report for the bots into the environment's shared RPA ledger "
    "(default: a report collected over SSH is published, one read with --records is not).",
)
@click.pass_obj
def report(
    obj: Context, output: Path | None, lang: str, records: Path | None, publish: bool | None
) -> None:
    """Collect /etc/gestic/access.json from every host and write the access inventory.

    Writes access-report.json, access-inventory.csv, access-people.csv, access-report.html
    and the raw records; the run is kept in the ledger, and the report is published into the
    shared RPA ledger, where a scheduled access review (revision-accesos) on a bots host
    finds it. Exits with an error when a host has no record or a finding is critical (an
    incomplete removal, an undeclared active account, undeclared keys, groups or sudo).
    """
    out_dir = output or obj.artifacts / "access"
    if publish is None:
        publish = records is None
    rpa = RpaContext(obj, None)
    made = make_report(
        obj,
        out_dir=out_dir,
        lang=lang,
        records=records,
        publish=rpa.publish_access_report if publish else None,
        log=console.print,
    )
    _print(made.report, lang)
    for path in made.paths:
        console.print(f"wrote {path}")
    console.print(made.summary)
    if made.report.critical:
        raise GesticError(
            f"access report: {len(made.report.critical)} critical findings "
            f"(see {out_dir / 'access-report.html'})"
        )
