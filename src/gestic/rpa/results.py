"""What robots and bot runs did: each robot's tasks (from its output.xml) and a run's outcome.

A run is ok only when every robot exited cleanly (exit 0, not killed, not stopped at its step
timeout), no item of the run is left outstanding or failed for a technical reason, and the
runner did not give up on a step; `BotRun.problems` says which of these failed, in words.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gestic.rpa.queue import DONE


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
    #: The step's timeout, for the message of a robot stopped at it.
    timeout_minutes: float | None = None
    #: Items this robot finished (done, failed or retried; technical failures only when it
    #: exited cleanly): 0 for a robot that made no progress.
    finished_items: int = 0

    @property
    def killed(self) -> bool:
        """Ended by a signal (by us at its timeout, by an operator, or by the kernel)."""
        return self.rc < 0

    @property
    def clean(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def problem(self) -> str | None:
        """Why this robot did not end cleanly, in words (None when it did)."""
        where = f"robot {self.output_dir.name}"
        if self.timed_out:
            limit = f" ({self.timeout_minutes:g} min)" if self.timeout_minutes else ""
            return f"{where} was killed at its step timeout{limit}"
        if self.killed:
            return f"{where} was killed by signal {-self.rc}"
        if self.rc != 0:
            failed = [t.name for t in self.tasks if t.status == "FAIL"]
            what = f": task {failed[0]!r} failed" if failed else " before its tasks ran"
            return f"{where} exited with status {self.rc}{what}"
        return None

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
            "finished_items": self.finished_items,
            "problem": self.problem(),
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
    #: Why the runner stopped starting robots before the queues were drained (None: it did not).
    gave_up: str | None = None

    @property
    def processed(self) -> int:
        return sum(n for tally in self.queues.values() for k, n in tally.items() if k != "pending")

    @property
    def outstanding(self) -> int:
        """Items of this run left pending (ready or waiting for a retry) or in progress."""
        return sum(t.get("pending", 0) + t.get("in_progress", 0) for t in self.queues.values())

    def problems(self) -> list[str]:
        """Everything that makes this run not ok, in words (empty when it is ok): the run's
        own problems first, then the robots' (several robots: how many, and the last one's)."""
        out = [self.gave_up] if self.gave_up else []
        technical = sum(t.get("failed_application", 0) for t in self.queues.values())
        if technical:
            out.append(f"{technical} items failed for a technical reason (dead letters)")
        if self.outstanding:
            out.append(f"{self.outstanding} items left outstanding")
        robots = [p for r in self.robots if (p := r.problem()) is not None]
        if len(robots) == 1:
            out.append(robots[0])
        elif robots:
            out.append(f"{len(robots)} robots did not end cleanly (the last: {robots[-1]})")
        return out

    @property
    def ok(self) -> bool:
        """Every robot exited cleanly, no item is outstanding or a technical failure."""
        return not self.problems()

    def summary(self) -> str:
        sla = self.queues.get(self.sla_queue, {})
        text = (
            f"{len(self.robots)} robots; {self.sla_queue}: {sla.get(DONE, 0)} done, "
            f"{sla.get('failed_business', 0)} business exceptions, "
            f"{sla.get('failed_application', 0)} technical failures, "
            f"{sla.get('pending', 0) + sla.get('in_progress', 0)} outstanding"
        )
        problems = self.problems()
        return f"{text} - {'; '.join(problems)}" if problems else text

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
            "gave_up": self.gave_up,
            "problems": self.problems(),
        }
