"""`gestic cmdb export`: the asset and configuration inventory as JSON and CSV."""

from __future__ import annotations

from pathlib import Path

import click

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError
from gestic.procedures.cmdb.assets import FactCollector, build_assets, write_exports


@click.group(name="cmdb")
def COMMAND() -> None:
    """Asset and configuration inventory (Activos y Configuración TI)."""


@COMMAND.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for cmdb.json, cmdb-hosts.csv, cmdb-packages.csv (default: artifacts/cmdb).",
)
@click.pass_obj
def export(obj: Context, output: Path | None) -> None:
    """Gather facts from every host and write the inventory joined with the model."""
    out_dir = output or obj.artifacts / "cmdb"
    collector = FactCollector()
    with obj.ledger.record(kind="cmdb.export", target=obj.target) as run:
        result = obj.run_playbook("cmdb.yml", event_sink=collector)
        assets = build_assets(obj.model, collector.facts)
        paths = write_exports(assets, out_dir, environment=obj.model.environment)
        missing = [a.name for a in assets if not a.reachable]
        run.summary = f"{len(assets)} assets, {len(missing)} unreachable"
        run.add_details(files=[str(p) for p in paths], unreachable=missing)
        if missing:
            run.fail(run.summary)
    for path in paths:
        console.print(f"wrote {path}")
    if missing or not result.ok:
        raise GesticError(f"cmdb export incomplete: no facts from {', '.join(missing) or '?'}")
