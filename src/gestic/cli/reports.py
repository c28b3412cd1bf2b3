"""`gestic reports`: the reports for management as a whole (an index of the latest ones)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import click
from rich.table import Table

from gestic import reports
from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import UsageError
from gestic.reports import index as reports_index

#: The institution's zone when the environment declares no monitoring (which names one).
DEFAULT_ZONE = "America/Bogota"


@click.group(name="reports")
def COMMAND() -> None:
    """The reports for management: one index page of the latest of each."""


@COMMAND.command(name="index")
@lang_option()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The index file (default: artifacts/index.html; index-en.html in English).",
)
@click.option(
    "--evidence-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the DR drills' evidence is (default: dr/evidence).",
)
@click.pass_obj
def index(obj: Context, lang: str, output: Path | None, evidence_dir: Path | None) -> None:
    """Write one page linking the latest report of each procedure and indicator."""
    language = reports.check_lang(lang, UsageError)
    model = obj.model
    zone = model.monitoring.zone if model.monitoring else ZoneInfo(DEFAULT_ZONE)
    runs = [
        r for kind in reports_index.BACKUP_KINDS for r in obj.ledger.runs(kind=kind, limit=1000)
    ]
    path, found = reports_index.write_index(
        output or obj.artifacts / f"index{reports.lang_suffix(language)}.html",
        artifacts=obj.artifacts,
        evidence=evidence_dir or obj.root / "dr" / "evidence",
        lang=language,
        backup_runs=runs,
        environment=model.environment,
        zone=zone,
    )
    table = Table(title="latest reports")
    table.add_column("report")
    table.add_column("file")
    for f in found:
        make = reports_index.command_for(f.source, language)
        if f.path is None:
            where = f"[yellow]not generated yet[/]: {make}"
        elif f.lang != language:
            where = f"{f.path} [yellow](only in {f.lang}: {make})[/]"
        else:
            where = str(f.path)
        table.add_row(reports.text("index", "en")[f.source.key], where)
    console.print(table)
    console.print(f"wrote {path}")
