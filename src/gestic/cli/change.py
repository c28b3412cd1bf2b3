"""`gestic change record`: the change record of a commit range (Control de Cambios y Despliegue)."""

from __future__ import annotations

from pathlib import Path

import click

from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.procedures.change.record import build


@click.group(name="change")
def COMMAND() -> None:
    """Change control: the record of a change, for the pull request and the ledger."""


@COMMAND.command(name="record")
@click.option("--range", "rev_range", required=True, help="Commit range BASE..HEAD.")
@lang_option("Language of the Markdown (Spanish for the institution's records by default).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Markdown here instead of printing it.",
)
@click.option("--no-preview", is_flag=True, help="Skip the mocked production preview.")
@click.pass_obj
def record(obj: Context, rev_range: str, lang: str, output: Path | None, no_preview: bool) -> None:
    """What changed, its risk, what verified it and how to roll it back (Markdown + ledger)."""
    ledger = obj.ledger
    with ledger.record(kind="change.record", target=rev_range) as run:
        rec = build(
            root=obj.root, rev_range=rev_range, ledger=ledger, production_diff=not no_preview
        )
        text = rec.markdown("en" if lang == "en" else "es")
        run.summary = (
            f"{len(rec.commits)} commits, {len(rec.files)} files, risk {rec.risk}, "
            f"{len(rec.runs)} verification runs"
        )
        run.add_details(rec.as_dict(), markdown=text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output} ({run.summary})")
    else:
        click.echo(text, nl=False)
