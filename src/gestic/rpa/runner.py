"""Run bots: the robots' environment, robot processes, workers, and what the ledger keeps.

rpaframework pins Robot Framework and Selenium and brings ~100 packages, so robots run in an
environment of their own (a virtualenv built from `robots/requirements.txt` into the cache),
as subprocesses: ``<robots venv>/bin/python -m robot ...`` with
``RPA_WORKITEMS_ADAPTER=gestic.rpa.adapter.GesticAdapter``. The few gestic modules the adapter
needs (standard library only) are copied next to the run and put on PYTHONPATH. Robots never
open the queue database: while a bot runs, the runner serves the queue to its robots over a
private Unix socket (`gestic.rpa.broker`), so a robot starts without a database driver and
without the ledger's credentials.

A run of a bot goes step by step. Each step's queue is worked by up to N robots at once; when
robots end and items are still outstanding (a retry whose backoff has not passed, an item whose
robot died and whose lease has not expired yet), the runner waits for them and starts robots
again, until the queue is drained or the step's time is up. Every robot's output.xml and
log.html are kept as run artifacts; the ledger gets one row per run (`rpa.run`) and one per
robot (`rpa.robot`) with each task's status and time.

Robots can run inside a named network namespace (`Runner.netns`, e.g. the lab's router
namespace: `gestic rpa run --lab`): each robot command is then prefixed with
``nsenter --net=/run/netns/<name> --``, so the robot (and the browser it starts) reaches
addresses that only exist in that namespace, while this process and the root namespace stay
as they are. Only the network namespace changes (nsenter, not `ip netns exec`, which also
remounts /sys): files, the broker's socket and the robots' environment are the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import gestic
from gestic.lab import names
from gestic.ledger import FAILED, LEDGER_URL_ENV, SUCCEEDED, Ledger
from gestic.rpa.broker import QueueBroker
from gestic.rpa.errors import RpaError
from gestic.rpa.manifest import Bot, SeedItem, Step
from gestic.rpa.queue import DONE, WorkQueue

ADAPTER: Final = "gestic.rpa.adapter.GesticAdapter"
#: The gestic modules a robot's adapter imports (standard library only): the adapter, the
#: broker's client and the error classes.
ADAPTER_MODULES: Final = (
    "__init__.py",
    "errors.py",
    "rpa/__init__.py",
    "rpa/errors.py",
    "rpa/queue_client.py",
    "rpa/adapter.py",
)
READY_MARK: Final = ".gestic-ready"
#: A prebuilt robots' environment to use as is (bots hosts: the rpa_scheduler role's).
ROBOTS_ENV_ENV: Final = "GESTIC_ROBOTS_ENV"
#: Headless browser flags the browser bots get (see docs/rpa.md).
BROWSER_ENV: Final = {
    "GESTIC_CHROMIUM": "/usr/bin/chromium",
    "GESTIC_CHROMEDRIVER": "/usr/bin/chromedriver",
}
NSENTER: Final = "nsenter"

Printer = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def netns_command(netns: str | None) -> list[str]:
    """The prefix that runs a command inside the named network namespace (none for None)."""
    if netns is None:
        return []
    return [NSENTER, f"--net={names.netns_path(netns)}", "--"]


def check_netns(netns: str) -> None:
    """Raise RpaError unless robots can be started inside the named network namespace."""
    if not netns or "/" in netns or netns in (".", ".."):
        raise RpaError(f"invalid network namespace name {netns!r}")
    path = Path(names.netns_path(netns))
    if not path.exists():
        raise RpaError(
            f"network namespace {netns} does not exist ({path} is missing): is the lab up? "
            "(gestic infra up --stack lab)"
        )
    if shutil.which(NSENTER) is None:
        raise RpaError(f"{NSENTER} (util-linux) is not on PATH: cannot enter {netns}")
    if os.geteuid() != 0:
        raise RpaError(f"entering network namespace {netns} needs root (CAP_SYS_ADMIN)")


# -- the robots' environment ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RobotsEnv:
    """A virtualenv with rpaframework, built once per requirements file content."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @classmethod
    def location(cls, requirements: Path, cache: Path) -> Path:
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
        tag = f"py{sys.version_info.major}{sys.version_info.minor}"
        return cache / "rpa" / f"robots-{tag}-{digest}"

    @classmethod
    def existing(cls, path: Path) -> RobotsEnv:
        """A robots' environment built elsewhere (e.g. installed by a role); never modified."""
        env = cls(path=path)
        if not env.python.is_file():
            raise RpaError(
                f"{ROBOTS_ENV_ENV}={path}: no robots' environment there ({env.python} is missing)"
            )
        return env

    @classmethod
    def ensure(cls, requirements: Path, cache: Path, *, log: Printer = _quiet) -> RobotsEnv:
        """The robots' environment for `requirements`, created (and cached) if missing."""
        if not requirements.is_file():
            raise RpaError(f"{requirements}: the robots' requirements file is missing")
        path = cls.location(requirements, cache)
        env = cls(path=path)
        if (path / READY_MARK).is_file():
            return env
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
            if (path / READY_MARK).is_file():
                return env
            shutil.rmtree(path, ignore_errors=True)
            log(f"creating the robots' environment in {path} (once; takes a few seconds)")
            # uv (a gestic dependency) installs rpaframework's ~150 packages 5-10x faster than
            # pip, from the same index and with the same resolution rules
            from uv import find_uv_bin  # noqa: PLC0415 - the bots hosts get a prebuilt env

            uv = find_uv_bin()
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(path)],
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(env.python),
                    "-r",
                    str(requirements),
                ],
            ]
            for cmd in steps:
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                    raise RpaError(
                        f"cannot create the robots' environment ({' '.join(cmd[:4])} ...): "
                        + " | ".join(tail)
                    )
            (path / READY_MARK).write_text(requirements.read_text(encoding="utf-8"))
        return env


def adapter_pythonpath(state: Path) -> Path:
    """A directory holding the gestic modules the adapter needs, current with this install."""
    src = Path(gestic.__file__).resolve().parent
    digest = hashlib.sha256()
    for rel in ADAPTER_MODULES:
        digest.update(rel.encode())
        digest.update((src / rel).read_bytes())
    target = state / "rpa" / f"pylib-{digest.hexdigest()[:12]}"
    if not (target / READY_MARK).is_file():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for rel in ADAPTER_MODULES:
            dest = tmp / "gestic" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest)
        (tmp / READY_MARK).write_text("")
        try:
            tmp.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# -- one robot ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    name: str
    status: str
    elapsed_s: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "elapsed_s": self.elapsed_s,
            "message": self.message,
        }


@dataclass(frozen=True, kw_only=True)
class RobotResult:
    step: str
    worker: str
    rc: int
    duration_s: float
    output_dir: Path
    tasks: tuple[TaskResult, ...]
    held_at_exit: tuple[int, ...] = ()
    timed_out: bool = False

    @property
    def killed(self) -> bool:
        return self.rc < 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "worker": self.worker,
            "rc": self.rc,
            "duration_s": round(self.duration_s, 3),
            "output_dir": str(self.output_dir),
            "tasks": [t.as_dict() for t in self.tasks],
            "held_at_exit": list(self.held_at_exit),
            "timed_out": self.timed_out,
        }


def parse_output(output_xml: Path) -> tuple[TaskResult, ...]:
    """Each task's status, time and message from a Robot Framework 7 output.xml."""
    if not output_xml.is_file():
        return ()
    try:
        root = ET.parse(output_xml).getroot()
    except ET.ParseError:
        return ()  # a robot killed while writing leaves a truncated file
    tasks = []
    for test in root.iter("test"):
        status = test.find("status")
        if status is None:
            continue
        elapsed = status.get("elapsed")
        if elapsed is None:  # RF 6 format: starttime/endtime
            elapsed_s = _rf6_elapsed(status.get("starttime"), status.get("endtime"))
        else:
            elapsed_s = float(elapsed)
        tasks.append(
            TaskResult(
                name=test.get("name", ""),
                status=status.get("status", "FAIL"),
                elapsed_s=elapsed_s,
                message=(status.text or "").strip(),
            )
        )
    return tuple(tasks)


def _rf6_elapsed(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    fmt = "%Y%m%d %H:%M:%S.%f"
    try:
        return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()
    except ValueError:
        return 0.0


@dataclass(kw_only=True)
class RobotProcess:
    """A robot started in the background (one worker)."""

    step: Step
    worker: str
    output_dir: Path
    proc: subprocess.Popen[bytes]
    started: float
    deadline: float
    timed_out: bool = False


@dataclass(kw_only=True)
class Runner:
    """Runs bots' steps as robot processes against the work-item queue."""

    queue: WorkQueue
    ledger: Ledger
    env: RobotsEnv
    state: Path
    artifacts: Path
    log: Printer = _quiet
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
        held = self.queue.release_held(robot.worker, done=rc == 0 and not robot.timed_out)
        result = RobotResult(
            step=robot.step.name,
            worker=robot.worker,
            rc=rc,
            duration_s=duration,
            output_dir=robot.output_dir,
            tasks=parse_output(robot.output_dir / "output.xml"),
            held_at_exit=tuple(held),
            timed_out=robot.timed_out,
        )
        status = SUCCEEDED if rc == 0 else FAILED
        failed_tasks = [t.name for t in result.tasks if t.status == "FAIL"]
        summary = (
            f"rc={rc}, {len(result.tasks)} tasks, {len(failed_tasks)} failed"
            + (" (killed)" if result.killed else "")
            + (" (timed out)" if robot.timed_out else "")
        )
        robot_run = self.ledger.start(
            kind="rpa.robot",
            target=f"{bot.name}/{robot.step.name}",
            details={"run": run_id},
            commit=self.ledger.get(run_id).commit,  # the bot run's, without asking git again
        )
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
    ) -> list[RobotResult]:
        """Work `step`'s queue with up to `workers` robots until it is drained (or time is up)."""
        limit = max(1, min(workers, step.workers or workers))
        running: list[RobotProcess] = []
        results: list[RobotResult] = []
        serial = 0
        host = socket.gethostname()
        try:
            while True:
                for robot in list(running):
                    if robot.proc.poll() is not None:
                        running.remove(robot)
                        results.append(self.finish_robot(bot, robot, run_id))
                    elif time.monotonic() > robot.deadline and not robot.timed_out:
                        robot.timed_out = True
                        _terminate(robot.proc)
                if len(running) >= limit:  # no robot to start: no need to look at the queue
                    self._wait_for_one(running)
                    continue
                counts = self.queue.counts(step.queue)  # read-only: never delays robots
                if counts.expired:
                    self.queue.sweep(step.queue)
                    counts = self.queue.counts(step.queue)
                claimable = counts.pending + counts.expired
                stopping = (stop is not None and stop.is_set()) or time.monotonic() > deadline
                if not stopping:
                    while claimable > len(running) and len(running) < limit:
                        serial += 1
                        worker = f"{host}:{os.getpid()}:r{run_id}:{step.name}:{serial}"
                        out = run_dir / f"{step.name}-{serial:03d}"
                        self.log(f"  {step.name}: robot {serial} started")
                        running.append(self.start_robot(bot, step, worker, out, variables, broker))
                if not running and (counts.outstanding == 0 or stopping):
                    return results
                self._wait_for_one(running)
        finally:
            for robot in running:  # interrupted: stop our robots, their leases will expire
                _terminate(robot.proc)
                robot.proc.wait()
                results.append(self.finish_robot(bot, robot, run_id))

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
    ) -> BotRun:
        """Seed the first step (if `seed`), then work every step in order; recorded as one run."""
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
            self.ledger.record(kind=kind, target=bot.name) as run,
            QueueBroker(self.queue) as broker,
        ):
            run_dir = self.artifacts / "rpa" / bot.name / str(run.run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            seeded = self.seed(bot, steps[0], seed, run_id=run.run_id) if seed else []
            started = time.monotonic()
            robots: list[RobotResult] = []
            for step in steps:
                if budget is not None:
                    deadline = started + budget
                else:
                    deadline = time.monotonic() + step.timeout_minutes * 60
                self.log(f"{bot.name}: step {step.name} (queue {step.queue})")
                robots += self.run_step(
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


@dataclass(frozen=True, kw_only=True)
class BotRun:
    """What one run of a bot did."""

    run_id: int
    bot: str
    artifacts: Path
    robots: tuple[RobotResult, ...]
    seeded: tuple[int, ...]
    queues: dict[str, dict[str, int]]
    sla_queue: str
    duration_s: float
    #: The network namespace the robots ran in (None: the orchestrator's own).
    netns: str | None = None

    @property
    def processed(self) -> int:
        return sum(n for tally in self.queues.values() for k, n in tally.items() if k != "pending")

    @property
    def ok(self) -> bool:
        """No robot crashed and no item was left failing for a technical reason."""
        crashed = any(r.killed or r.timed_out for r in self.robots)
        technical = any(t.get("failed_application", 0) for t in self.queues.values())
        return not crashed and not technical

    def summary(self) -> str:
        sla = self.queues.get(self.sla_queue, {})
        return (
            f"{len(self.robots)} robots; {self.sla_queue}: {sla.get(DONE, 0)} done, "
            f"{sla.get('failed_business', 0)} business exceptions, "
            f"{sla.get('failed_application', 0)} technical failures, "
            f"{sla.get('pending', 0) + sla.get('in_progress', 0)} outstanding"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "bot": self.bot,
            "artifacts": str(self.artifacts),
            "robots": [r.as_dict() for r in self.robots],
            "seeded": list(self.seeded),
            "queues": self.queues,
            "sla_queue": self.sla_queue,
            "duration_s": round(self.duration_s, 3),
            "netns": self.netns,
        }


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def interrupt_event() -> Iterator[threading.Event]:
    """An event set on SIGTERM, for a graceful stop of long runs (the scheduler service)."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def utcnow() -> datetime:
    return datetime.now(UTC)
