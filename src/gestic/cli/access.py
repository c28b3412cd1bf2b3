"""`gestic access report`: the access inventory, from every host's record and the declarations."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError
from gestic.procedures.access.records import collect_records, read_record_dir
from gestic.procedures.access.report import AccessReport, build_report, write_report

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
@click.pass_obj
def report(obj: Context, output: Path | None, lang: str, records: Path | None) -> None:
    """Collect /etc/gestic/access.json from every host and write the access inventory.

    Writes access-report.json, access-inventory.csv, access-people.csv, access-report.html
    and the raw records; the run is kept in the ledger. Exits with an error when a host has
    no record or a finding is critical (an incomplete removal, an undeclared active account,
    undeclared keys, groups or sudo).
    """
    model = obj.model
    out_dir = output or obj.artifacts / "access"
    source = str(records) if records else "ssh"
    with obj.ledger.record(kind="access.report", target=model.environment) as run:
        errors: dict[str, str] = {}
        if records is not None:
            texts = read_record_dir(records, sorted(model.hosts))
        else:
            obj.access.write(model)
            texts, errors = collect_records(
                inventory=obj.inventory / "hosts.yml",
                access=obj.access,
                artifacts_dir=obj.artifacts / "ansible",
            )
        result = build_report(model, texts, errors)
        paths = write_report(result, out_dir, lang=lang, texts=texts if records is None else None)
        summary = result.summary()
        counts = summary["findings"]
        run.summary = (
            f"{summary['hosts_recorded']}/{summary['hosts']} hosts, "
            f"{summary['people_with_access']} people with access, "
            f"{summary['removed_accounts_locked']}/{summary['removed_accounts_found']} removed "
            f"accounts locked, {summary['undeclared_accounts']} undeclared, "
            f"{counts['critical']} critical findings"
        )
        run.add_details(
            source=source,
            files=[str(p) for p in paths],
            summary=summary,
            critical=[f.as_dict("en") for f in result.critical],
        )
        if result.critical:
            run.fail(run.summary)
    _print(result, lang)
    for path in paths:
        console.print(f"wrote {path}")
    console.print(run.summary)
    if result.critical:
        raise GesticError(
            f"access report: {len(result.critical)} critical findings "
            f"(see {out_dir / 'access-report.html'})"
        )
