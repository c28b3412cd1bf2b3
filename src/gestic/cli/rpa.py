"""`gestic rpa`: bots on the work-item queue, their schedule, and the RPA service level."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from gestic.cli.options import lang_option
from gestic.cli.rpa_access import (
    FRESH,
    PUBLISHED,
    Source,
    check_source,
    report_seed,
)
from gestic.cli.rpa_context import RpaContext
from gestic.cli.rpa_scheduled import env_inbox, inbox_address, scheduled_run
from gestic.console import console
from gestic.environments.context import Context
from gestic.errors import RpaError
from gestic.rpa.manifest import Bot, load_seed
from gestic.rpa.report import write_report
from gestic.rpa.results import BotRun
from gestic.rpa.robot_process import interrupt_event
from gestic.rpa.schedule import Scheduler, timezone
from gestic.rpa.site_inputs import bot_variables
from gestic.rpa.sla import Period, at_risk

F = TypeVar("F", bound=Callable[..., Any])


def lab_option() -> Callable[[F], F]:
    """`--lab`: start the robots inside the current lab's router network namespace."""
    return click.option(
        "--lab",
        "in_lab",
        is_flag=True,
        help="Run the robots inside the lab's network (its router namespace), so that they "
        "reach lab addresses such as the portal on web-p1; this machine's routes are untouched.",
    )


def _rpa(obj: Any) -> RpaContext:
    assert isinstance(obj, RpaContext)
    return obj


def _run_variables(
    rpa: RpaContext, bot: Bot, given: dict[str, str], *, in_env: bool
) -> dict[str, str]:
    """A run in the environment (on a bots host, or `in_env`: --lab, --from-inbox) gets the
    environment's robot variables (gestic_rpa.variables); `given` (--var) wins over them."""
    if in_env or rpa.on_bots_host:
        return {**bot_variables(rpa.model, bot), **given}
    rpa.warn_lab_addresses(bot, given)
    return given


@click.group(name="rpa")
@click.option(
    "--robots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the bots (default: robots/, or GESTIC_ROBOTS_DIR).",
)
@click.pass_context
def COMMAND(ctx: click.Context, robots: Path | None) -> None:
    """Robotic process automation: bots, work-item queues, schedule and service level."""
    assert isinstance(ctx.obj, Context)
    ctx.obj = RpaContext(ctx.obj, robots)


@COMMAND.command()
@click.pass_obj
def env(obj: RpaContext) -> None:
    """Create the robots' own environment (rpaframework) if it is missing."""
    found = _rpa(obj).env()
    console.print(f"robots' environment: {found.path}")


@COMMAND.command()
@click.pass_obj
def bots(obj: RpaContext) -> None:
    """The bots, their queues, schedules and service levels."""
    table = Table(title=f"bots in {_rpa(obj).robots}")
    for col in ("bot", "queue (SLA)", "SLA min", "schedule", "attempts", "steps"):
        table.add_column(col)
    for bot in _rpa(obj).bots.values():
        m = bot.manifest
        table.add_row(
            m.name,
            m.queue,
            f"{m.sla_minutes:g}",
            m.schedule or "-",
            str(m.max_attempts),
            " -> ".join(s.name for s in m.steps),
        )
    broken = _rpa(obj).catalog.broken
    for name in broken:
        table.add_row(name, "[red]invalid manifest[/]", "-", "-", "-", "-")
    console.print(table)
    if broken:
        raise RpaError(f"{len(broken)} bot manifests are invalid: {', '.join(broken)}")


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, not {value!r}", param_hint="--var")
        out[name] = rest
    return out


def _print_run(result: BotRun) -> None:
    table = Table(title=f"{result.bot}: run {result.run_id} ({result.duration_s:.1f} s)")
    for col in ("queue", "done", "business", "technical", "pending", "in progress"):
        table.add_column(col)
    for queue, tally in result.queues.items():
        table.add_row(
            queue,
            str(tally.get("done", 0)),
            str(tally.get("failed_business", 0)),
            str(tally.get("failed_application", 0)),
            str(tally.get("pending", 0)),
            str(tally.get("in_progress", 0)),
        )
    console.print(table)
    where = f" (in network namespace {result.netns})" if result.netns else ""
    console.print(f"robots: {len(result.robots)}{where}; logs and outputs: {result.artifacts}")


@COMMAND.command()
@click.argument("bot_name", metavar="BOT")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32))
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Work items (Robocorp devdata JSON) for the first step, instead of the manifest's seed.",
)
@click.option("--no-seed", is_flag=True, help="Only work what is already queued.")
@click.option("--var", "variables", multiple=True, help="Robot variable NAME=VALUE (repeatable).")
@click.option("--step", "from_step", default=None, help="Start at this step (skip earlier ones).")
@click.option("--max-minutes", type=float, default=None, help="Stop starting robots after this.")
@click.option(
    "--from-inbox",
    is_flag=True,
    help="Start from the new files of the partner's inbox (the environment's, over SFTP), "
    "as the scheduler does, instead of the manifest's seed.",
)
@click.option(
    "--inbox-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The collector's private key (default: GESTIC_RPA_INBOX_KEY).",
)
@click.option(
    "--inbox-known-hosts",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="known_hosts with the transfer host's key (default: GESTIC_RPA_INBOX_KNOWN_HOSTS).",
)
@click.option(
    "--access-report",
    "access_report",
    type=click.Choice([FRESH, PUBLISHED]),
    default=None,
    help="For a bot that reviews the access report (manifest: access_report): 'fresh' makes "
    "the environment's report now, as `gestic access report` does (the controller), "
    "'published' takes the newest one published into the shared ledger (as the scheduler "
    "does); instead of the seed's fixture.",
)
@lab_option()
@click.pass_obj
def run(
    obj: RpaContext,
    bot_name: str,
    workers: int,
    input_file: Path | None,
    no_seed: bool,
    variables: tuple[str, ...],
    from_step: str | None,
    max_minutes: float | None,
    from_inbox: bool,
    inbox_key: Path | None,
    inbox_known_hosts: Path | None,
    access_report: Source | None,
    in_lab: bool,
) -> None:
    """Run BOT: seed its first step, then work each step's queue with N robots.

    A run in the environment (on a bots host, --lab, or --from-inbox) also gets the
    environment's robot variables (gestic_rpa.variables: addresses from the inventory);
    --var wins over them."""
    rpa = _rpa(obj)
    bot = rpa.bot(bot_name)
    if from_inbox and (input_file is not None or no_seed or from_step is not None):
        raise RpaError("--from-inbox starts the first step: not with --input, --no-seed or --step")
    if access_report and (input_file or no_seed or from_step is not None or from_inbox):
        raise RpaError("--access-report seeds the first step: not with --input, --no-seed, "
                       "--step or --from-inbox")  # fmt: skip
    if access_report is not None:
        check_source(rpa, bot, access_report)  # before anything is built or started
    if from_inbox:
        inbox_address(rpa, bot)  # before anything is built or started
    values = _run_variables(rpa, bot, _parse_vars(variables), in_env=in_lab or from_inbox)
    first = bot.step(from_step) if from_step else bot.manifest.steps[0]
    seed, details = None, None
    if input_file is not None:
        seed = load_seed(input_file)
    elif not no_seed and not from_inbox and first.seed is not None and not access_report:
        seed = load_seed(bot.root / first.seed)
    runner = rpa.runner(in_lab=in_lab)  # the queue's database opens before any report is made
    if access_report is not None:
        seeded = report_seed(rpa, bot, access_report)
        seed, details = seeded.items, seeded.details
    with contextlib.ExitStack() as stack:
        inbox, settle_s = (
            stack.enter_context(env_inbox(rpa, bot, key=inbox_key, known_hosts=inbox_known_hosts))
            if from_inbox
            else (None, 0.0)
        )
        stop = stack.enter_context(interrupt_event())
        result = runner.run_bot(
            bot,
            workers=workers,
            seed=seed,
            variables=values,
            from_step=from_step,
            max_minutes=max_minutes,
            stop=stop,
            inbox=inbox,
            settle_s=settle_s,
            details=details,
        )
    _print_run(result)
    if not result.ok:
        raise RpaError(f"{bot.name}: run {result.run_id}: {result.summary()}")


@COMMAND.command()
@click.argument("bot_name", metavar="BOT")
@click.option("--failed", is_flag=True, required=True, help="Re-queue failed items (required).")
@click.option(
    "--business", is_flag=True, help="Also BUSINESS failures (once their data is corrected)."
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32))
@lab_option()
@click.pass_obj
def rerun(
    obj: RpaContext, bot_name: str, failed: bool, business: bool, workers: int, in_lab: bool
) -> None:
    """Put BOT's failed items back in its queues and work them again (with the environment's
    robot variables, as `run` gets them)."""
    rpa = _rpa(obj)
    bot = rpa.bot(bot_name)
    runner = rpa.runner(in_lab=in_lab)
    requeued: dict[str, list[int]] = {}
    for step in bot.manifest.steps:
        ids = rpa.queue.requeue_failed(queue=step.queue, include_business=business)
        if ids:
            requeued[step.queue] = ids
    if not requeued:
        console.print(f"{bot.name}: no failed items to re-run")
        return
    first = next(s for s in bot.manifest.steps if s.queue in requeued)
    console.print(
        f"{bot.name}: re-queued " + ", ".join(f"{len(ids)} in {q}" for q, ids in requeued.items())
    )
    with interrupt_event() as stop:
        result = runner.run_bot(
            bot, workers=workers, from_step=first.name, stop=stop, kind="rpa.rerun",
            variables=_run_variables(rpa, bot, {}, in_env=in_lab),
        )  # fmt: skip
    _print_run(result)
    if not result.ok:
        raise RpaError(f"{bot.name}: re-run {result.run_id}: {result.summary()}")


@COMMAND.command()
@click.argument("bot_name", metavar="BOT")
@click.option("--state", "states", multiple=True, help="Only items in this state (repeatable).")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def items(
    obj: RpaContext, bot_name: str, states: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """BOT's work items (newest last), with their state, attempts and exception."""
    rpa = _rpa(obj)
    bot = rpa.bot(bot_name)
    found = rpa.queue.items(bot=bot.name, states=list(states) or None)[-limit:]
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in found], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{bot.name}: work items")
    for col in ("id", "queue", "state", "tries", "created", "exception", "message"):
        table.add_column(col)
    for item in found:
        exc = f"{item.exception_type or ''} {item.exception_code or ''}".strip()
        table.add_row(
            str(item.id),
            item.queue,
            item.state + (" (dead letter)" if item.dead_letter else ""),
            f"{item.attempts}/{item.max_attempts}",
            f"{item.created_at:%Y-%m-%d %H:%M:%S}",
            exc or "-",
            (item.exception_message or "")[:60],
        )
    console.print(table)


def _status_table(rpa: RpaContext) -> Group:
    now = datetime.now(UTC)
    table = Table(title=f"queues at {now:%Y-%m-%d %H:%M:%S} UTC")
    for col in ("bot", "queue", "pending", "waiting", "in progress", "done", "business", "tech"):
        table.add_column(col)
    risk = Table(title="at risk of breaching the SLA (at the current handling rate)")
    for col in ("bot", "queue", "outstanding", "at risk", "first due", "rate /min"):
        risk.add_column(col)
    for bot in rpa.bots.values():
        for step in bot.manifest.steps:
            c = rpa.queue.counts(step.queue)
            table.add_row(
                bot.name,
                step.queue,
                str(c.pending),
                str(c.waiting),
                str(c.in_progress),
                str(c.done),
                str(c.failed_business),
                str(c.failed_application),
            )
        forecast = at_risk(rpa.queue, bot, now=now)
        if forecast.outstanding:
            risk.add_row(
                bot.name,
                bot.manifest.queue,
                str(forecast.outstanding),
                f"[red]{len(forecast.at_risk)}[/]" if forecast.at_risk else "0",
                f"{forecast.first_due:%H:%M}" if forecast.first_due else "-",
                f"{forecast.rate_per_minute:.2f}",
            )
    return Group(table, risk)


@COMMAND.command()
@click.option("--watch", type=float, default=None, help="Refresh every SECONDS until Ctrl-C.")
@click.pass_obj
def status(obj: RpaContext, watch: float | None) -> None:
    """Live view of the queues and of the items at risk of breaching their SLA."""
    rpa = _rpa(obj)
    if watch is None:
        console.print(_status_table(rpa))
        return
    with Live(_status_table(rpa), console=console, refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(watch)
                live.update(_status_table(rpa))
        except KeyboardInterrupt:
            pass


@COMMAND.command()
@click.option("--period", required=True, help="The month to report, YYYY-MM.")
@lang_option()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the HTML and JSON (default: artifacts/rpa/reports).",
)
@click.option("--months", default=6, show_default=True, help="Months in the trend chart.")
@click.pass_obj
def report(obj: RpaContext, period: str, lang: str, output: Path | None, months: int) -> None:
    """Nivel del servicio RPA for a month: HTML report (Spanish, or English) and JSON."""
    rpa = _rpa(obj)
    month = Period.parse(period)
    out_dir = output or rpa.ctx.artifacts / "rpa" / "reports"
    with rpa.ctx.ledger.record(kind="rpa.report", target=str(month)) as run:
        paths = write_report(
            queue=rpa.queue,
            bots=rpa.bots,
            settings=rpa.settings,
            period=month,
            lang=lang,
            out_dir=out_dir,
            months=months,
            environment=rpa.model.environment,
        )
        run.summary = f"{paths.indicator.summary()}"
        run.add_details(html=str(paths.html), json=str(paths.json))
    console.print(f"Nivel del servicio RPA {month}: {paths.indicator.summary()}")
    console.print(f"wrote {paths.html}\nwrote {paths.json}")


@COMMAND.command()
@click.option("--max-runs", type=int, default=None, help="Stop after this many bot runs.")
@click.option("--list", "list_only", is_flag=True, help="Only show the next run of each bot.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 32))
@lab_option()
@click.pass_obj
def schedule(
    obj: RpaContext, max_runs: int | None, list_only: bool, workers: int, in_lab: bool
) -> None:
    """Run the bots on their manifests' cron schedules (the long-running service)."""
    rpa = _rpa(obj)
    settings = rpa.settings
    enabled = {n: b for n, b in rpa.bots.items() if not settings.bots or n in settings.bots}
    tz = timezone(settings.timezone)
    if list_only:
        plan = Scheduler(bots=enabled, run=lambda b, t: None, tz=tz).plan(datetime.now(UTC))
        table = Table(title=f"next runs ({settings.timezone})")
        table.add_column("bot")
        table.add_column("schedule")
        table.add_column("next run")
        for name, when in sorted(plan.items(), key=lambda kv: kv[1]):
            table.add_row(name, enabled[name].manifest.schedule or "-", f"{when.astimezone(tz)}")
        console.print(table)
        return
    runner = rpa.runner(in_lab=in_lab)

    def report_error(bot: Bot, exc: Exception) -> None:
        console.print(f"[red]{bot.name}: scheduled run failed:[/] {exc}")

    with interrupt_event() as stop:
        run_one = scheduled_run(rpa, runner, workers=workers, stop=stop)
        scheduler = Scheduler(bots=enabled, run=run_one, tz=tz, stop=stop, on_error=report_error)
        console.print(f"scheduling {len(scheduler.plan(datetime.now(UTC)))} bots ({tz.key})")
        done = scheduler.serve(max_runs=max_runs)
    console.print(f"scheduler stopped after {done} runs")
