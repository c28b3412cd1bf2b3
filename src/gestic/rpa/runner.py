"""Run bots: robot processes, the workers of each step, and what the ledger keeps.

Robots run in an environment of their own (`gestic.rpa.robots_env`), as subprocesses:
``<robots venv>/bin/python -m robot ...`` with
``RPA_WORKITEMS_ADAPTER=gestic.rpa.adapter.GesticAdapter``. Robots never open the queue
database: while a bot runs, the runner serves the queue to its robots over a private Unix
socket (`gestic.rpa.broker`), so a robot starts without a database driver and without the
ledger's credentials.

A run of a bot goes step by step. Each step's queue is worked by up to N robots at once; when
robots end and items are still outstanding (a retry whose backoff has not passed, an item whose
robot died and whose lease has not expired yet), the runner waits for them and starts robots
again, until the queue is drained or the step's time is up. Every robot's output.xml and
log.html are kept as run artifacts; the ledger gets one row per run (`rpa.run`) and one per
robot (`rpa.robot`) with each task's status and time.

Robots cannot run away: a robot that ends without finishing any item (it crashed at start, or
exited at once while items were ready) is started again only after a backoff that doubles
(`robot_backoff_seconds`), and after `max_robot_failures` such robots in a row the run gives up
on the step and fails, saying why. One robot that finishes an item resets the count, so robots
killed now and then (chaos tests, a host lost) never stop a run that makes progress.

Robots can run inside a named network namespace (`Runner.netns`, e.g. the lab's router
namespace: `gestic rpa run --lab`): each robot command is then prefixed with
``nsenter --net=/run/netns/<name> --``, so the robot (and the browser it starts) reaches
addresses that only exist in that namespace, while this process and the root namespace stay
as they are. Only the network namespace changes (nsenter, not `ip netns exec`, which also
remounts /sys): files, the broker's socket and the robots' environment are the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from gestic.errors import RpaError
from gestic.rpa.broker import QueueBroker
from gestic.rpa.intake import SETTLE_S, Inbox, IntakeResult, take
from gestic.rpa.manifest import Bot, SeedItem, Step
from gestic.rpa.queue import APPLICATION, WorkQueue
from gestic.rpa.results import BotRun, RobotResult, parse_output
from gestic.rpa.robot_process import (
    RobotProcess,
    RunawayGuard,
    check_netns,
    netns_command,
    terminate,
)
from gestic.rpa.robots_env import Printer, RobotsEnv, adapter_pythonpath, quiet
from gestic.store.ledger import FAILED, LEDGER_URL_ENV, SUCCEEDED, Ledger

__all__ = ["BotRun", "RobotResult", "Runner", "StepOutcome"]

ADAPTER: Final = "gestic.rpa.adapter.GesticAdapter"
#: Headless browser flags the browser bots get (see docs/rpa.md).
BROWSER_ENV: Final = {
    "GESTIC_CHROMIUM": "/usr/bin/chromium",
    "GESTIC_CHROMEDRIVER": "/usr/bin/chromedriver",
}


@dataclass(kw_only=True)
class StepOutcome:
    """The robots one step ran, and why it stopped early (None: its queue was worked)."""

    robots: list[RobotResult] = field(default_factory=list)
    gave_up: str | None = None


@dataclass(kw_only=True)
class Runner:
    """Runs bots' steps as robot processes against the work-item queue."""

    queue: WorkQueue
    ledger: Ledger
    env: RobotsEnv
    state: Path
    artifacts: Path
    log: Printer = quiet
    poll_s: float = 0.2
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: Start every robot inside this named network namespace (/run/netns/<netns>), e.g. the
    #: lab's router namespace so robots reach lab addresses; None: this process's namespace.
    netns: str | None = None

    def robot_command(
        self, bot: Bot, step: Step, output_dir: Path, variables: Mapping[str, str]
    ) -> list[str]:
        cmd = [
            *netns_command(self.netns),
            str(self.env.python),
            "-m",
            "robot",
            "--rpa",
            "--outputdir",
            str(output_dir),
            "--output",
            "output.xml",
            "--log",
            "log.html",
            "--report",
            "NONE",
            "--consolecolors",
            "off",
            "--console",
            "quiet",
            "--name",
            f"{bot.name} {step.name}",
            "--pythonpath",
            str(bot.libraries),
            "--variable",
            f"BOT_ROOT:{bot.root}",
        ]
        for name, value in sorted(variables.items()):
            cmd += ["--variable", f"{name}:{value}"]
        cmd.append(str(bot.suite(step)))
        return cmd

    def robot_env(
        self, bot: Bot, step: Step, worker: str, output_dir: Path, broker: QueueBroker
    ) -> dict[str, str]:
        nxt = bot.output_of(step)
        manifest = bot.manifest
        inherited = {k: v for k, v in os.environ.items() if k != LEDGER_URL_ENV}
        env = {
            **inherited,
            **BROWSER_ENV,
            **self.extra_env,
            **broker.environment(),
            "PYTHONPATH": str(adapter_pythonpath(self.state)),
            "RPA_WORKITEMS_ADAPTER": ADAPTER,
            "GESTIC_RPA_BOT": bot.name,
            "GESTIC_RPA_QUEUE": step.queue,
            "GESTIC_RPA_WORKER": worker,
            "GESTIC_RPA_LEASE_S": str(manifest.lease_seconds),
            "GESTIC_RPA_BACKOFF_S": str(manifest.backoff_seconds),
            "GESTIC_RPA_BACKOFF_MAX_S": str(manifest.backoff_max_seconds),
            "GESTIC_RPA_OUTPUT_QUEUE": nxt.queue if nxt else bot.final_queue,
            "GESTIC_RPA_OUTPUT_FINAL": "0" if nxt else "1",
            "GESTIC_RPA_OUTPUT_ATTEMPTS": str(manifest.max_attempts),
            "GESTIC_RPA_OUTPUT_SLA_MIN": (
                str(manifest.sla_minutes) if nxt and nxt.queue == manifest.queue else ""
            ),
            "ROBOT_ROOT": str(output_dir),
            "ROBOCORP_HOME": str(output_dir / ".robocorp"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return env

    def start_robot(
        self,
        bot: Bot,
        step: Step,
        worker: str,
        output_dir: Path,
        variables: Mapping[str, str],
        broker: QueueBroker,
    ) -> RobotProcess:
        output_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.robot_command(bot, step, output_dir, variables)
        with open(output_dir / "console.txt", "wb") as console:
            proc = subprocess.Popen(
                cmd,
                cwd=output_dir,
                env=self.robot_env(bot, step, worker, output_dir, broker),
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        now = time.monotonic()
        return RobotProcess(
            step=step,
            worker=worker,
            output_dir=output_dir,
            proc=proc,
            started=now,
            deadline=now + step.timeout_minutes * 60,
        )

    def finish_robot(self, bot: Bot, robot: RobotProcess, run_id: int) -> RobotResult:
        rc = robot.proc.returncode
        assert rc is not None
        duration = time.monotonic() - robot.started
        # A robot that ended cleanly with an item still reserved (a step that never releases
        # its input explicitly) completed it; one that died leaves it to its lease.
        clean = rc == 0 and not robot.timed_out
        held = self.queue.release_held(robot.worker, done=clean)
        outcomes = self.queue.outcomes_by(robot.worker)
        # A robot that crashed after failing its item for a technical reason (rpaframework
        # fails the current item when a task fails) made no progress: only its retries did.
        finished = sum(n for o, n in outcomes.items() if clean or o != APPLICATION.lower())
        result = RobotResult(
            step=robot.step.name,
            worker=robot.worker,
            rc=rc,
            duration_s=duration,
            output_dir=robot.output_dir,
            tasks=parse_output(robot.output_dir / "output.xml"),
            held_at_exit=tuple(held),
            timed_out=robot.timed_out,
            timeout_minutes=robot.step.timeout_minutes,
            finished_items=finished,
        )
        failed_tasks = [t.name for t in result.tasks if t.status == "FAIL"]
        summary = (
            f"rc={rc}, {len(result.tasks)} tasks, {len(failed_tasks)} failed, "
            f"{result.finished_items} items finished"
        )
        if (problem := result.problem()) is not None:
            summary += f" ({problem})"
        robot_run = self.ledger.start(
            kind="rpa.robot",
            target=f"{bot.name}/{robot.step.name}",
            details={"run": run_id},
            commit=self.ledger.get(run_id).commit,  # the bot run's, without asking git again
        )
        status = SUCCEEDED if result.clean else FAILED
        self.ledger.finish(robot_run, status=status, summary=summary, details=result.as_dict())
        return result

    def run_step(
        self,
        bot: Bot,
        step: Step,
        *,
        run_id: int,
        run_dir: Path,
        workers: int,
        variables: Mapping[str, str],
        deadline: float,
        broker: QueueBroker,
        stop: threading.Event | None = None,
    ) -> StepOutcome:
        """Work `step`'s queue with up to `workers` robots until it is drained (or time is up,
        or too many robots in a row ended without finishing an item)."""
        limit = max(1, min(workers, step.workers or workers))
        running: list[RobotProcess] = []
        outcome = StepOutcome()
        ended: list[RobotResult] = []  # finished since the queue was last looked at
        guard = RunawayGuard(manifest=bot.manifest, step=step, log=self.log)
        serial = 0
        host = socket.gethostname()
        try:
            while True:
                for robot in list(running):
                    if robot.proc.poll() is not None:
                        running.remove(robot)
                        ended.append(self.finish_robot(bot, robot, run_id))
                    elif time.monotonic() > robot.deadline and not robot.timed_out:
                        robot.timed_out = True
                        terminate(robot.proc)
                if len(running) >= limit:  # no robot to start: no need to look at the queue
                    self._wait_for_one(running)
                    continue
                counts = self.queue.counts(step.queue)  # read-only: never delays robots
                if counts.expired:
                    self.queue.sweep(step.queue)
                    counts = self.queue.counts(step.queue)
                claimable = counts.pending + counts.expired
                for result in ended:
                    guard.robot_ended(result, items_ready=claimable > 0)
                outcome.robots += ended
                ended = []
                outcome.gave_up = guard.gave_up
                stopping = (
                    (stop is not None and stop.is_set())
                    or time.monotonic() > deadline
                    or guard.gave_up is not None
                )
                if not stopping and guard.may_start():
                    while claimable > len(running) and len(running) < limit:
                        serial += 1
                        worker = f"{host}:{os.getpid()}:r{run_id}:{step.name}:{serial}"
                        out = run_dir / f"{step.name}-{serial:03d}"
                        self.log(f"  {step.name}: robot {serial} started")
                        running.append(self.start_robot(bot, step, worker, out, variables, broker))
                if not running and (counts.outstanding == 0 or stopping):
                    return outcome
                self._wait_for_one(running)
        finally:
            outcome.robots += ended
            for robot in running:  # interrupted: stop our robots, their leases will expire
                terminate(robot.proc)
                robot.proc.wait()
                outcome.robots.append(self.finish_robot(bot, robot, run_id))

    def _wait_for_one(self, running: list[RobotProcess]) -> None:
        """Sleep a poll interval, or less: back as soon as the oldest robot ends."""
        if not running:
            time.sleep(self.poll_s)
            return
        # Popen.wait(timeout) polls with sleeps of up to 50 ms: a pidfd wakes us on the exit.
        poller = select.poll()
        fds: list[int] = []
        try:
            for robot in running:  # still unreaped (poll() said running), so the pid is theirs
                fds.append(os.pidfd_open(robot.proc.pid))
                poller.register(fds[-1], select.POLLIN)
            poller.poll(self.poll_s * 1000)
        except OSError:  # no pidfds (old kernel, or the robot was just reaped): plain wait
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].proc.wait(timeout=self.poll_s)
        finally:
            for fd in fds:
                os.close(fd)

    def seed(self, bot: Bot, step: Step, items: list[SeedItem], *, run_id: int) -> list[int]:
        manifest = bot.manifest
        sla = manifest.sla_minutes if step.queue == manifest.queue else None
        return [
            self.queue.create(
                bot=bot.name,
                queue=step.queue,
                payload=item.payload,
                files=item.files,
                max_attempts=manifest.max_attempts,
                sla_minutes=sla,
                run_id=run_id,
            )
            for item in items
        ]

    def take_inbox(
        self, bot: Bot, step: Step, inbox: Inbox, *, run_id: int, settle_s: float
    ) -> IntakeResult:
        """One item in `step`'s queue per settled new file of `inbox` (gestic.rpa.intake)."""
        manifest = bot.manifest
        taken = take(
            inbox, self.queue, bot=bot.name, queue_name=step.queue, run_id=run_id,
            max_attempts=manifest.max_attempts, settle_s=settle_s,
            sla_minutes=manifest.sla_minutes if step.queue == manifest.queue else None,
        )  # fmt: skip
        self.log(
            f"{bot.name}: inbox {inbox.source}: {len(taken.taken)} new file(s)"
            + "".join(f", {len(v)} {k}" for k, v in
                      (("already taken", taken.already), ("still arriving", taken.waiting),
                       ("refused", taken.refused)) if v)
        )  # fmt: skip
        for name, why in taken.refused.items():
            self.log(f"{bot.name}: inbox {inbox.source}: {name} left there: {why}")
        return taken

    def run_bot(
        self,
        bot: Bot,
        *,
        workers: int = 1,
        seed: list[SeedItem] | None = None,
        variables: Mapping[str, str] | None = None,
        from_step: str | None = None,
        max_minutes: float | None = None,
        stop: threading.Event | None = None,
        kind: str = "rpa.run",
        inbox: Inbox | None = None,
        settle_s: float = SETTLE_S,
        on_seeded: Callable[[], None] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> BotRun:
        """Seed the first step (from `seed`, or one item per new file of `inbox`), then work
        every step in order; recorded as one run (`details`, e.g. where the seed came from,
        kept in its ledger row). `on_seeded` is called once the first step's new items are
        queued, before any robot starts."""
        if workers < 1:
            raise RpaError(f"--workers must be at least 1, not {workers}")
        if self.netns is not None:
            check_netns(self.netns)  # before anything is recorded or started
        steps = list(bot.manifest.steps)
        if from_step is not None:
            steps = steps[steps.index(bot.step(from_step)) :]
        values = {**bot.manifest.variables, **(variables or {})}
        budget = max_minutes * 60 if max_minutes is not None else None
        with (
            self.ledger.record(kind=kind, target=bot.name, details=dict(details or {})) as run,
            QueueBroker(self.queue) as broker,
        ):
            run_dir = self.artifacts / "rpa" / bot.name / str(run.run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            seeded = self.seed(bot, steps[0], seed, run_id=run.run_id) if seed else []
            if inbox is not None:
                intake = self.take_inbox(bot, steps[0], inbox, run_id=run.run_id, settle_s=settle_s)
                seeded += list(intake.taken.values())
                run.add_details(intake={"source": inbox.source, **dataclasses.asdict(intake)})
            if on_seeded is not None:
                on_seeded()
            started = time.monotonic()
            robots: list[RobotResult] = []
            gave_up: str | None = None
            for step in steps:
                if budget is not None:
                    deadline = started + budget
                else:
                    deadline = time.monotonic() + step.timeout_minutes * 60
                self.log(f"{bot.name}: step {step.name} (queue {step.queue})")
                done = self.run_step(
                    bot,
                    step,
                    run_id=run.run_id,
                    run_dir=run_dir,
                    workers=workers,
                    variables=values,
                    deadline=deadline,
                    broker=broker,
                    stop=stop,
                )
                robots += done.robots
                if done.gave_up is not None:  # the next steps would only wait for its items
                    gave_up = done.gave_up
                    break
            outcome = BotRun(
                run_id=run.run_id,
                bot=bot.name,
                artifacts=run_dir,
                robots=tuple(robots),
                seeded=tuple(seeded),
                queues={s.queue: self._tally(s.queue, run.run_id) for s in bot.manifest.steps},
                sla_queue=bot.manifest.queue,
                duration_s=time.monotonic() - started,
                netns=self.netns,
                gave_up=gave_up,
            )
            run.changed = outcome.processed
            run.summary = outcome.summary()
            run.add_details(outcome.as_dict())
            if not outcome.ok:
                run.fail(outcome.summary())
        return outcome

    def _tally(self, queue: str, run_id: int) -> dict[str, int]:
        tally: dict[str, int] = {}
        for item in self.queue.items(queue=queue, run_id=run_id):
            key = item.state
            if item.state == "failed":
                key = f"failed_{(item.exception_type or 'APPLICATION').lower()}"
            tally[key] = tally.get(key, 0) + 1
        return tally


def utcnow() -> datetime:
    return datetime.now(UTC)
