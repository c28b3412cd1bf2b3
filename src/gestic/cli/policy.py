"""`gestic policy check`: the production rules against what the production program declares."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import PolicyViolation
from gestic.model import load_model
from gestic.procedures.change.policy import PolicyReport, check, stack_config_path
from gestic.production.config import load_stack_file
from gestic.production.rules import RULES


@click.group(name="policy")
def COMMAND() -> None:
    """Policy rules of the production stacks (backup and owner tags, DR, ports, encryption)."""


@COMMAND.command(name="check")
@click.option("--stack", default="production", show_default=True, type=click.Choice(["production"]))
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Inventory of the environment (default: inventory/production).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The stack's settings (default: stacks/production/Pulumi.<stack>.yaml).",
)
@click.option(
    "--summary",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the result as Markdown (for a pull request comment).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the violations as JSON.")
@click.pass_obj
def check_command(
    obj: Context,
    *,
    stack: str,
    model_dir: Path | None,
    config_file: Path | None,
    summary: Path | None,
    as_json: bool,
) -> None:
    """Declare the stack under Pulumi mocks and apply every rule; fail on a mandatory one."""
    model = load_model(model_dir or obj.root / "inventory" / stack, check_machine=False)
    config = load_stack_file(config_file or stack_config_path(obj.root, stack))
    with obj.ledger.record(kind="policy.check", target=stack) as run:
        report = check(model, config, stack=stack)
        run.summary = (
            f"{len(report.declared)} resources, {len(report.mandatory)} mandatory violations, "
            f"{len(report.advisory)} advisories"
        )
        run.add_details(
            violations=[
                {"policy": v.policy, "enforcement": v.enforcement, "message": v.message}
                for v in report.violations
            ],
            resources=report.counts,
        )
        if not report.ok:
            run.fail(run.summary)
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(report.markdown() + "\n", encoding="utf-8")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "stack": stack,
                    "ok": report.ok,
                    "resources": report.counts,
                    "violations": [v.__dict__ for v in report.violations],
                },
                indent=2,
            )
        )
    else:
        _print(report)
    if not report.ok:
        raise PolicyViolation(
            f"stack '{stack}' violates {len(report.mandatory)} mandatory rule(s):\n"
            + "\n".join(f"  - {v.policy}: {v.message}" for v in report.mandatory)
        )


def _print(report: PolicyReport) -> None:
    table = Table(title=f"stack {report.stack}: {len(report.declared)} resources (mocks)")
    table.add_column("type")
    table.add_column("count", justify="right")
    for kind, count in sorted(report.counts.items()):
        table.add_row(kind, str(count))
    console.print(table)
    for v in report.violations:
        style = "red" if v.enforcement == "mandatory" else "yellow"
        console.print(f"[{style}]{v.enforcement}[/] {v.policy}: {v.message}")
    verdict = "[green]passes[/]" if report.ok else "[red]fails[/]"
    console.print(
        f"policy check {verdict}: {len(RULES)} rules, {len(report.mandatory)} mandatory "
        f"violations, {len(report.advisory)} advisories"
    )
