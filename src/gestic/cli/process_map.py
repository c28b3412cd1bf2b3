"""`gestic process-map`: docs/process.md from docs/process.yml (the process-to-code map)."""

from __future__ import annotations

import click

from gestic.console import console
from gestic.environments.context import Context
from gestic.reports.process_map import check_page, write_page


@click.command(name="process-map")
@click.option("--check", is_flag=True, help="Only check: fail when a path is missing or stale.")
@click.pass_obj
def COMMAND(obj: Context, check: bool) -> None:
    """Write docs/process.md: every procedure, guide and indicator and the code that does it."""
    if check:
        check_page(obj.root)
        console.print("docs/process.md is up to date; every path it names exists")
        return
    console.print(f"wrote {write_page(obj.root)}")
