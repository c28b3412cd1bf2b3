"""`gestic drill`: DR drills that measure RTO and RPO against the plan's targets."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import DrillError
from gestic.procedures.dr.drill import DrillResult, Scenario, run_drill
from gestic.procedures.dr.evidence import duration, write_evidence
from gestic.procedures.dr.failback import CleanupResult, cleanup
from gestic.procedures.dr.plan import PLAN_FILE, Step, load_plan


def _approver(auto: bool) -> object:
    def approve(step: Step) -> bool:
        if auto and step.auto_approve_in_drill:
            console.print(f"  [dim]auto-approved[/] {step.id}: {step.text}")
            return True
        if not sys.stdin.isatty():
            raise DrillError(
                f"step '{step.id}' needs a confirmation ({step.responsible}): run interactively "
                "or pass --auto-approve"
            )
        return click.confirm(f"{step.text} ({step.responsible})", default=False)

    return approve


@click.group(name="drill", invoke_without_command=True)
@click.option("--scenario", type=click.Choice(["site-loss", "host-loss"]), default=None)
@click.option("--host", default=None, help="The lost host (host-loss).")
@click.option("--test", is_flag=True, help="Leave production running; recover in isolation.")
@click.option("--auto-approve", is_flag=True, help="Approve the plan's manual steps (drills).")
@lang_option()
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--evidence-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where to write the evidence (default: dr/evidence).",
)  # fmt: skip
@click.pass_context
def COMMAND(
    click_ctx: click.Context,
    scenario: str | None,
    host: str | None,
    test: bool,
    auto_approve: bool,
    lang: str,
    plan_path: Path | None,
    evidence_dir: Path | None,
) -> None:
    """Run a DR drill (dr/plan.yml); exits non-zero when a target is breached."""
    if click_ctx.invoked_subcommand is not None:
        return
    if scenario is None:
        raise click.UsageError("--scenario site-loss|host-loss is required")
    obj: Context = click_ctx.obj
    plan = load_plan(plan_path or obj.root / PLAN_FILE, obj.model)
    kind = "drill.test" if test else "drill"
    with obj.exclusive(f"{kind} {scenario}"), obj.ledger.record(kind=kind, target=scenario) as run:
        result = run_drill(
            obj, plan, scenario=scenario_of(scenario), host=host, test=test,
            approve=_approver(auto_approve),  # type: ignore[arg-type]
            say=lambda m: console.print(m, markup=False),
        )  # fmt: skip
        run.summary = _summary(result)
        run.add_details(result.as_dict())
        evidence = write_evidence(result, evidence_dir or obj.root / "dr" / "evidence", lang=lang)
        run.add_details(evidence=str(evidence.directory))
        if not result.ok:
            run.fail(run.summary)
    _print(result)
    console.print(f"evidence: {evidence.record}\n          {evidence.report}")
    if not result.ok:
        raise DrillError("drill failed:\n" + "\n".join(f"  - {b}" for b in result.breaches()))
    if not test:
        console.print("the DR site is serving: run `gestic drill failback` to return")


def scenario_of(name: str) -> Scenario:
    return "host-loss" if name == "host-loss" else "site-loss"


def _summary(result: DrillResult) -> str:
    parts = [
        f"{s.service} RTO {duration(s.rto_s)} RPO {duration(s.rpo_s)}" for s in result.services
    ]
    return ("ok: " if result.ok else "FAILED: ") + "; ".join(parts)


def _print(result: DrillResult) -> None:
    table = Table(title=f"drill {result.scenario}{' (test)' if result.test else ''}")
    for col in ("wave", "service", "host", "RTO", "target", "RPO", "target", "irreducible", "ok"):
        table.add_column(col)
    for s in result.services:
        table.add_row(
            s.wave, s.service, s.host, duration(s.rto_s), duration(s.rto_target_s),
            duration(s.rpo_s), duration(s.rpo_target_s), duration(s.irreducible_s),
            "yes" if s.ok else f"NO {s.error[:60]}",
        )  # fmt: skip
    console.print(table)


def _print_cleanup(result: CleanupResult) -> None:
    for line in result.undone:
        console.print(f"  {line}")
    if result.ok:
        console.print(f"[green]clean[/]: nothing of the drill left ({result.duration_s:.1f} s)")
    else:
        for line in result.leftovers:
            console.print(f"  [red]left[/] {line}")


def _cleanup(obj: Context, plan_path: Path | None, kind: str) -> None:
    plan = load_plan(plan_path or obj.root / PLAN_FILE, obj.model)
    with obj.exclusive(kind), obj.ledger.record(kind=kind, target=obj.target) as run:
        result = cleanup(obj, plan, say=lambda m: console.print(m, markup=False))
        run.summary = "clean" if result.ok else "; ".join(result.leftovers)
        run.add_details(undone=result.undone, leftovers=result.leftovers)
        if not result.ok:
            run.fail(run.summary)
    _print_cleanup(result)
    if not result.ok:
        raise DrillError("cleanup incomplete:\n" + "\n".join(f"  - {x}" for x in result.leftovers))


@COMMAND.command(name="failback")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def failback(obj: Context, plan_path: Path | None) -> None:
    """Return to the primary site: hosts up, recoveries undone, names back; verified.

    The one command that undoes a drill, whatever state it left: after a real drill or failover,
    and after an interrupted or test drill (no isolation rule, no drill state left). Safe to rerun.
    """
    _cleanup(obj, plan_path, "drill.failback")
