"""The `gestic` command: validate the model, drive the lab stack, converge, verify, and the demo."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from gestic.cli import demo_steps, discovered
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import GesticError, UsageError
from gestic.lab.status import host_statuses, leftovers
from gestic.production.preview import preview_production
from gestic.tools.ansible.runner import ConvergeResult
from gestic.tools.ansible.strategy import DEFAULT as DEFAULT_STRATEGY
from gestic.tools.ansible.strategy import STRATEGIES, STRATEGY_ENV
from gestic.tools.pulumi.automation import OpResult
from gestic.tools.testinfra import VerifyResult, check_hosts, run_verify

F = TypeVar("F", bound=Callable[..., Any])


def _ctx(obj: Any) -> Context:
    assert isinstance(obj, Context)
    return obj


@click.group()
@click.option(
    "--env",
    "env",
    default=None,
    metavar="NAME",
    help="Environment: inventory/NAME (default: GESTIC_ENV, else lab).",
)
@click.option(
    "--inventory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Inventory directory outside inventory/ (or GESTIC_INVENTORY); instead of --env.",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="When another run is changing the environment, wait this long for it (default: "
    "GESTIC_LOCK_WAIT, else 0: refuse at once, saying who holds it).",
)
@click.version_option(package_name="gestic")
@click.pass_context
def cli(ctx: click.Context, env: str | None, inventory: Path | None, wait_s: float | None) -> None:
    """gestic: the ICETEX datacenter and its robots, as code."""
    ctx.obj = Context.from_env(inventory, env)
    ctx.obj.lock_wait_s = wait_s


@cli.command()
@click.pass_obj
def validate(obj: Context) -> None:
    """Check the model (inventory) and report every problem with its file and line."""
    _validate(_ctx(obj))


def _validate(obj: Context) -> None:
    model = obj.model
    console.print(
        f"[green]ok[/] {obj.inventory}: {len(model.sites)} sites, {len(model.hosts)} hosts, "
        f"{len(model.services)} services, {len(model.backup_policies)} backup policies"
    )
    for warning in model.warnings:
        console.print(f"[yellow]warning[/] {warning}")


@cli.group()
def infra() -> None:
    """Preview, apply, refresh or destroy a Pulumi stack."""


def _stack_operation(name: str, help_text: str) -> None:
    @infra.command(name=name, help=help_text)
    @click.option(
        "--stack", default="lab", show_default=True, type=click.Choice(["lab", "production"]),
        help="production: preview only (its applies run in the institution's CI).",
    )  # fmt: skip
    @click.option("--quiet", is_flag=True, help="Do not stream the engine's output.")
    @click.pass_obj
    def command(obj: Context, stack: str, quiet: bool) -> None:
        if stack == "production":
            _production(_ctx(obj), name, quiet=quiet)
            return
        obj = _ctx(obj)
        result = _infra(obj, name, quiet=quiet)
        _print_changes(result)

    del command


def _production(obj: Context, operation: str, *, quiet: bool) -> None:
    if operation != "preview":
        raise UsageError(
            f"`infra {operation} --stack production` is not run by gestic: the production stack "
            "is applied by the institution's CI (`pulumi up` in stacks/production, with its "
            "backend and credentials); gestic previews it (`infra preview --stack production`)"
        )
    printer = None if quiet else (lambda line: console.print(line, markup=False, highlight=False))
    changes = preview_production(obj.root, cache=obj.cache, on_output=printer)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(changes.items())) or "nothing"
    console.print(f"[bold]preview[/] stack production: {summary}")


def _infra(obj: Context, operation: str, *, quiet: bool = False) -> OpResult:
    stack = obj.lab_stack
    printer = None if quiet else (lambda line: console.print(line, markup=False, highlight=False))
    lock = (
        contextlib.nullcontext() if operation == "preview" else obj.exclusive(f"infra {operation}")
    )
    with lock, obj.ledger.record(kind=f"infra.{operation}", target=stack.name) as run:
        result = stack.run(operation, on_output=printer)  # type: ignore[arg-type]
        run.changed = result.changed
        run.summary = ", ".join(f"{k}={v}" for k, v in sorted(result.changes.items()))
        run.add_details(changes=result.changes, duration_s=result.duration_s)
    return result


def _print_changes(result: OpResult) -> None:
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(result.changes.items())) or "nothing"
    console.print(
        f"[bold]{result.operation}[/] stack {result.stack}: {summary} ({result.duration_s:.1f} s)"
    )


for _name, _help in (
    ("preview", "Show what `up` would change."),
    ("up", "Create or update the stack's resources."),
    ("refresh", "Read the real state of every resource into the stack (notices drift)."),
    ("destroy", "Remove every resource of the stack."),
):
    _stack_operation(_name, _help)


@cli.group()
def lab() -> None:
    """Inspect the lab datacenter."""


@lab.command()
@click.pass_obj
def status(obj: Context) -> None:
    """Hosts of the lab: site, address, process and SSH reachability."""
    _print_status(_ctx(obj))


def _print_status(obj: Context) -> None:
    settings = obj.lab_stack.settings
    table = Table(title=f"lab '{settings.lab}'")
    for col in ("host", "site", "address", "pid", "ssh", "state"):
        table.add_column(col)
    rows = host_statuses(obj.model, lab=settings.lab, lab_state_dir=settings.state_dir)
    for row in rows:
        state = "[green]up[/]" if row.up else "[red]down[/]"
        table.add_row(
            row.name, row.site, row.address, str(row.pid or "-"), "yes" if row.ssh else "no", state
        )
    console.print(table)
    rest = leftovers(lab=settings.lab, lab_state_dir=settings.state_dir)
    console.print(
        f"namespaces: {len(rest.namespaces)}, mounts: {len(rest.mounts)}, "
        f"host processes: {len(rest.processes)}"
    )


def _converge(
    obj: Context,
    *,
    check: bool,
    diff: bool,
    limit: str | None,
    tags: str | None,
    strategy: str | None = None,
) -> ConvergeResult:
    kind = "converge.check" if check else "converge"
    # --check changes nothing: it may run beside a change (and then sees it half done)
    lock = contextlib.nullcontext() if check else obj.exclusive(kind)
    with lock, obj.ledger.record(kind=kind, target=obj.target) as run:
        result = obj.run_playbook(
            check=check,
            diff=diff,
            limit=limit,
            tags=tags,
            strategy=strategy,
            on_event=lambda line: console.print(line, markup=False, soft_wrap=True),
        )
        run.changed = result.changed
        run.summary = (
            f"{len(result.per_host)} hosts, changed={result.changed}, failed={result.failed_hosts}"
        )
        run.add_details(per_host=result.per_host, changed_tasks=result.changed_tasks)
        if not result.ok:
            run.fail(run.summary)
    _print_converge(result)
    return result


def _print_converge(result: ConvergeResult) -> None:
    table = Table(title=f"converge: {result.status} ({result.duration_s:.1f} s)")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col)
    for host, c in sorted(result.per_host.items()):
        table.add_row(
            host,
            *(str(c.get(k, 0)) for k in ("ok", "changed", "failures", "unreachable", "skipped")),
        )
    console.print(table)


@cli.command()
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show the differences in files and templates.")
@click.option("--limit", default=None, help="Only these hosts or groups (Ansible pattern).")
@click.option("--tags", default=None, help="Only roles/tasks with these tags.")
@click.option(
    "--strategy",
    type=click.Choice(sorted(STRATEGIES)),
    default=None,
    help=f"Ansible strategy (default: {STRATEGY_ENV}, else {DEFAULT_STRATEGY}).",
)
@click.pass_obj
def converge(
    obj: Context, check: bool, diff: bool, limit: str | None, tags: str | None, strategy: str | None
) -> None:
    """Configure the lab hosts with Ansible (playbooks/site.yml)."""
    obj = _ctx(obj)
    result = _converge(obj, check=check, diff=diff, limit=limit, tags=tags, strategy=strategy)
    if not result.ok:
        raise GesticError(_converge_failure(obj, result))


def _converge_failure(obj: Context, result: ConvergeResult) -> str:
    """One line per failed host; an unreachable one says where and how it was tried."""
    lines = [
        f"  - {obj.access.route(host, obj.model)}: cannot be reached: {message}"
        for host, message in sorted(result.unreachable.items())
    ]
    lines += [f"  - {h}: tasks failed (see above)" for h in result.failed_hosts
              if h not in result.unreachable]  # fmt: skip
    return "converge failed:\n" + ("\n".join(lines) or "  see the output above")


def _verify(obj: Context, hosts: tuple[str, ...] = ()) -> VerifyResult:
    check_hosts(obj.model, hosts, where=obj.inventory)  # before the ledger records a run
    with obj.ledger.record(kind="verify", target=obj.target) as run:
        result = run_verify(
            checks_dir=obj.root / "verify",
            inventory=obj.inventory,
            model=obj.model,
            access=obj.access,
            artifacts_dir=obj.artifacts / "verify",
            hosts=list(hosts) or None,
        )
        if hosts:
            run.add_details(hosts=sorted(hosts))
        run.summary = f"{result.tests} checks, {result.failures} failures, {result.errors} errors"
        run.add_details(failed=result.failed, report=str(result.report), disabled=result.disabled)
        if not result.ok:
            run.fail(run.summary)
    console.print(f"[bold]verify[/]: {run.summary} ({result.duration_s:.1f} s)")
    for line in result.disabled:
        console.print(f"[yellow]control disabled by the inventory, not verified[/]: {line}")
    return result


@cli.command()
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="Check only this host of the model (repeatable); default: every host.",
)
@click.pass_obj
def verify(obj: Context, hosts: tuple[str, ...]) -> None:
    """Check every host (or each --host) against the model with testinfra over SSH."""
    result = _verify(_ctx(obj), hosts)
    if not result.ok:
        raise GesticError("verification failed:\n" + "\n".join(f"  - {f}" for f in result.failed))


DEMO_PHASES = ("infra", "backup", "drill", "robots", "reports")


@cli.command()
@click.option(
    "--until",
    type=click.Choice(DEMO_PHASES),
    default=DEMO_PHASES[-1],
    show_default=True,
    help="Stop after this phase.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(DEMO_PHASES),
    help="Run only these phases (repeatable), on a lab that is already up and converged.",
)
@click.pass_context
def demo(click_ctx: click.Context, until: str, only: tuple[str, ...]) -> None:
    """The main job on the lab: provision, configure, verify, back up, drill, robots, reports."""
    obj = _ctx(click_ctx.obj)
    chosen = DEMO_PHASES[: DEMO_PHASES.index(until) + 1]
    phases = tuple(p for p in chosen if not only or p in only)
    steps = _demo_steps(click_ctx, obj, phases)
    with obj.exclusive("demo"):  # its steps take the lock again, without waiting on themselves
        for number, (title, action) in enumerate(steps, start=1):
            _step(number, len(steps), title)
            action()
    console.rule("[bold green]demo complete")
    _print_status(obj)


def _demo_steps(
    click_ctx: click.Context, obj: Context, phases: tuple[str, ...]
) -> list[tuple[str, Callable[[], None]]]:
    """The demo's steps, phase by phase; each reuses the command a person would run."""

    def converge_once() -> None:
        _require(_converge(obj, check=False, diff=False, limit=None, tags=None).ok, "converge")

    def second_up() -> None:
        result = _infra(obj, "up", quiet=True)
        _print_changes(result)
        _require(result.changed == 0, "the second pulumi up changed resources")

    def second_converge() -> None:
        result = _converge(obj, check=False, diff=False, limit=None, tags=None)
        _require(result.ok and result.changed == 0, "the second converge changed tasks")

    steps: list[tuple[str, Callable[[], None]]] = [("validate the model", lambda: _validate(obj))]
    infra: list[tuple[str, Callable[[], None]]] = [
        (
            "provision the lab datacenter (pulumi up)",
            lambda: _print_changes(_infra(obj, "up", quiet=True)),
        ),
        ("configure the hosts (ansible)", converge_once),
        ("verify the hosts (testinfra)", lambda: _require(_verify(obj).ok, "verify")),
        ("check idempotence: a second pulumi up changes nothing", second_up),
        ("check idempotence: a second converge changes nothing", second_converge),
    ]
    for phase in phases:
        steps.extend(infra if phase == "infra" else demo_steps.for_phase(phase, click_ctx, obj))
    return steps


def _step(number: int, total: int, title: str) -> None:
    console.rule(f"[bold]{number}/{total} {title}")


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise GesticError(f"demo step failed: {what}")


@cli.command()
@click.option("--kind", default=None, help="Only runs of this kind (e.g. infra.up, converge).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_obj
def runs(obj: Context, kind: str | None, limit: int, as_json: bool) -> None:
    """The run ledger: what ran, from which commit, when, how long, result."""
    if as_json:
        records = _ctx(obj).ledger.runs(kind=kind, limit=limit)
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table(title=f"run ledger ({_ctx(obj).ledger.display_url})")
    for col in ("id", "kind", "target", "started", "s", "status", "changed", "commit", "summary"):
        table.add_column(col)
    for r in obj.ledger.runs(kind=kind, limit=limit):
        table.add_row(
            str(r.id),
            r.kind,
            r.target,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            f"{r.duration_s:.1f}" if r.duration_s is not None else "-",
            r.status,
            str(r.changed if r.changed is not None else "-"),
            (r.commit or "-")[:12],
            r.summary[:60],
        )
    console.print(table)


for _command in discovered():
    cli.add_command(_command)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GesticError as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)))
        sys.exit(1)
