"""Robot processes, kept from running away or outliving a run: the network namespace they start
in, the backoff and bound on robots that finish nothing, and their termination (by process
group). `gestic.rpa.runner` starts them and works the queues."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gestic.errors import RpaError
from gestic.lab import names
from gestic.rpa.manifest import Manifest, Step
from gestic.rpa.queue import backoff_delay
from gestic.rpa.results import RobotResult
from gestic.rpa.robots_env import Printer, quiet

NSENTER: Final = "nsenter"


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
class RunawayGuard:
    """Backoff and a bound for robots of one step that end without finishing an item."""

    manifest: Manifest
    step: Step
    log: Printer = quiet
    clock: Callable[[], float] = time.monotonic
    #: Robots in a row that finished nothing (reset by any robot that finished an item).
    failures: int = 0
    not_before: float = 0.0
    gave_up: str | None = None

    def robot_ended(self, robot: RobotResult, *, items_ready: bool) -> None:
        if robot.finished_items > 0:
            self.failures = 0
            self.not_before = 0.0
            return
        if robot.clean and not items_ready:
            return  # nothing was left for it: another robot took the last items
        self.failures += 1
        why = robot.problem() or f"robot {robot.output_dir.name} exited while items were ready"
        bound = self.manifest.max_robot_failures
        if self.failures >= bound:
            self.gave_up = (
                f"step {self.step.name}: {self.failures} robots in a row ended without "
                f"finishing an item (the last: {why}); gave up on the step, see "
                f"{robot.output_dir / 'console.txt'}"
            )
            self.log(f"  {self.gave_up}")
            return
        delay = backoff_delay(
            self.failures,
            self.manifest.robot_backoff_seconds,
            self.manifest.robot_backoff_max_seconds,
        )
        self.not_before = self.clock() + delay
        self.log(
            f"  {self.step.name}: no item finished ({why}); next robot in {delay:g} s "
            f"({self.failures} of {bound} before giving up)"
        )

    def may_start(self) -> bool:
        return self.gave_up is None and self.clock() >= self.not_before


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the robot's process group; SIGKILL it if it has not ended within 10 s."""
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
