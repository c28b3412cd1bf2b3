"""`gestic drift`: report what in the lab no longer matches the repository; non-zero if any."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import DriftFound
from gestic.procedures.change.drift import DriftReport, detect


@click.command(name="drift")
@click.option("--limit", default=None, help="Only these hosts or groups (Ansible pattern).")
@click.option("--tags", default=None, help="Only roles/tasks with these tags.")
@click.option("--hosts-only", is_flag=True, help="Skip the stack check (Ansible only).")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as Markdown (e.g. for a CI summary).",
)
@click.option(
    "--expect-changes",
    is_flag=True,
    help="A pull request's check: changes (and hosts the lab does not have yet) are the point; "
    "fail only when a task fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def COMMAND(
    obj: Context,
    *,
    limit: str | None,
    tags: str | None,
    hosts_only: bool,
    report: Path | None,
    expect_changes: bool,
    as_json: bool,
) -> None:
    """Detect drift: stack refresh-preview plus `ansible --check --diff` over the lab."""
    obj.access.write(obj.model)
    stack = None if hosts_only else obj.lab_stack
    with obj.ledger.record(kind="drift", target=obj.target) as run:
        result = detect(
            stack=stack,
            playbooks_dir=obj.root / "playbooks",
            inventory=obj.inventory / "hosts.yml",
            access=obj.access,
            artifacts_dir=obj.artifacts / "ansible",
            limit=limit,
            tags=tags,
            on_step=None if as_json else lambda s: console.print(f"[bold]drift[/]: {s}"),
        )
        run.changed = len(result.resources) + len(result.tasks)
        run.summary = (
            f"{len(result.resources)} resources, {len(result.tasks)} tasks on "
            f"{len(result.hosts)} hosts drifted"
        )
        run.add_details(
            resources=[asdict(r) for r in result.resources],
            tasks=[asdict(t) for t in result.tasks],
        )
        failed = [t for t in result.tasks if t.state == "failed"]
        if failed or (result.drifted and not expect_changes):
            run.fail(run.summary)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(result.markdown() + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(asdict(result) | {"drifted": result.drifted}, indent=2))
    else:
        _print(result)
    if failed:
        raise DriftFound(
            f"{len(failed)} task(s) fail in --check mode:\n"
            + "\n".join(f"  - {t}: {t.diff}" for t in failed)
        )
    if result.drifted and not expect_changes:
        raise DriftFound(f"drift in {result.stack}: {run.summary}")


def _print(result: DriftReport) -> None:
    for r in result.resources:
        console.print(f"[red]stack[/] {r}")
    for t in result.tasks:
        console.print(f"[red]host[/] {t}")
        if t.diff:
            console.print(t.diff, markup=False)
    verdict = "[red]drift found[/]" if result.drifted else "[green]no drift[/]"
    console.print(
        f"{verdict}: {len(result.resources)} stack resources, {len(result.tasks)} host tasks "
        f"({result.hosts_checked} hosts, {result.duration_s:.1f} s)"
    )
