"""`gestic backup`: run, check and verify the services' backups (Gestión de Backups)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import DrError
from gestic.procedures.backup.ops import backup_now, check, verify_restore
from gestic.procedures.dr.plan import PLAN_FILE, load_plan


@click.group(name="backup")
def COMMAND() -> None:
    """Backups of the services: run now, check the repositories, verify a restore."""


@COMMAND.command(name="run")
@click.argument("service")
@click.pass_obj
def run_cmd(obj: Context, service: str) -> None:
    """Back SERVICE up now from its host (what its timer does on schedule)."""
    with obj.ledger.record(kind="backup.run", target=service) as run:
        call = backup_now(obj, service)
        run.summary = f"snapshot {str(call.data.get('snapshot'))[:8]} ({call.duration_s:.1f} s)"
        run.add_details(call.data)
    console.print(f"[green]ok[/] {service}: {run.summary}")


@COMMAND.command(name="check")
@click.argument("service")
@click.option("--subset/--read-all", "subset", default=False, help="Read only the structure.")
@click.pass_obj
def check_cmd(obj: Context, service: str, subset: bool) -> None:
    """Check SERVICE's repositories (restic check, reading the data)."""
    with obj.ledger.record(kind="backup.check", target=service) as run:
        call = check(obj, service, read_data=not subset)
        repos = call.data.get("repos", [])
        run.add_details(call.data)
        bad = [r for r in repos if not r.get("ok")]
        run.summary = f"{len(repos) - len(bad)}/{len(repos)} repositories intact"
        if bad or not call.ok:
            run.fail(run.summary)
    for repo in repos:
        state = repo.get("state") or ("intact" if repo.get("ok") else "damaged")
        colour = {"intact": "green", "locked": "yellow"}.get(state, "red")
        console.print(f"{service} in {repo['repository']}: [{colour}]{state.upper()}[/]")
        for problem in repo.get("problems", [])[:5]:
            console.print(f"    {problem}", markup=False)
    if bad or not call.ok:
        raise DrError(_check_failure(service, bad, call.data.get("error")))


def _check_failure(service: str, bad: list[dict[str, Any]], error: str | None) -> str:
    """What failed and what to do, in restic's own words: a lock is not damage."""
    if not bad:
        return f"backup repository check of {service} did not run: {error or '?'}"
    lines = [f"backup repository check failed for {service}:"]
    for repo in bad:
        state = repo.get("state", "damaged")
        words = "; ".join(repo.get("problems", [])[:3]) or f"restic exited {repo.get('exit')}"
        if state == "locked":
            advice = (
                "another restic holds a live lock (a backup running, or a client that died less "
                "than 30 minutes ago): check again later; the data was not judged"
            )
        else:
            advice = "restore from another copy and re-run the backup"
        lines.append(f"  - {repo['repository']}: {state}: {words} ({advice})")
    return "\n".join(lines)


@COMMAND.command(name="verify")
@click.argument("service")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def verify_cmd(obj: Context, service: str, plan_path: Path | None) -> None:
    """Restore SERVICE's newest backup on an isolated host, start it, probe it, undo it."""
    plan = load_plan(plan_path or obj.root / PLAN_FILE, obj.model)
    # restores onto a DR host cut off from the primary site: never beside a drill or a change
    with (
        obj.exclusive(f"backup verify {service}"),
        obj.ledger.record(kind="backup.verify", target=service) as run,
    ):
        result = verify_restore(obj, plan, service)
        run.summary = (
            f"{'ok' if result.ok else 'FAILED'} on {result.host} ({result.mode}): "
            f"restore {result.restore_s or 0:.1f} s"
        )
        run.add_details(
            host=result.host, mode=result.mode, restore_s=result.restore_s,
            start_s=result.start_s, probe_s=result.probe_s, snapshot=result.snapshot,
            probes=result.probes, error=result.error, leftovers=result.leftovers,
        )  # fmt: skip
        if not result.ok:
            run.fail(run.summary + (f": {result.error}" if result.error else ""))
    table = Table(title=f"restore verification of {service} on {result.host} ({result.mode})")
    for col in ("probe", "result", "s", "detail"):
        table.add_column(col)
    for p in result.probes:
        table.add_row(
            p["name"], "ok" if p["ok"] else "FAILED", f"{p['duration_s']:.1f}", p["detail"]
        )
    console.print(table)
    console.print(
        f"snapshot {str(result.snapshot.get('id', '-'))[:8]} of {result.snapshot.get('time', '-')}"
        f"; restore {result.restore_s or 0:.1f} s, start {result.start_s or 0:.1f} s; "
        f"cleanup {'verified' if result.cleaned else 'INCOMPLETE'}"
    )
    if not result.ok:
        raise DrError(
            f"restore verification of {service} failed: {result.error or result.leftovers}"
        )
