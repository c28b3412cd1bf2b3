"""Fault injection for the RPA runner: kill this process's own robots at random, bounded.

Used by the chaos test and `nox -s bench`. Only robots that this process started are
targets: children of this process (by parent PID) running `python -m robot`, each killed by its
PID. The killer stops by itself after `kills` kills or `max_seconds`, whichever comes first.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def own_robots() -> list[int]:
    """PIDs of the robots that are children of this process (not yet exited)."""
    me = os.getpid()
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited while we looked
            continue
        # the command name may hold spaces or parentheses: the fields follow the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == me and argv[1:3] == [b"-m", b"robot"]:
            pids.append(int(entry.name))
    return sorted(pids)


@dataclass
class RobotKiller:
    """Kill one random robot of ours every `min_gap_s`..`max_gap_s` seconds, `kills` times."""

    kills: int
    min_gap_s: float = 0.5
    max_gap_s: float = 1.5
    max_seconds: float = 120.0
    seed: int = 0
    killed: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RobotKiller:
        self._thread = threading.Thread(target=self._run, name="robot-killer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        chance = random.Random(self.seed)
        deadline = time.monotonic() + self.max_seconds
        while len(self.killed) < self.kills and time.monotonic() < deadline:
            if self._stop.wait(chance.uniform(self.min_gap_s, self.max_gap_s)):
                return
            robots = own_robots()
            if not robots:
                continue
            pid = chance.choice(robots)
            if _kill_own_robot(pid):
                self.killed.append(pid)


def _kill_own_robot(pid: int) -> bool:
    """SIGKILL `pid` if it is still one of our robots; a pidfd pins the process meanwhile."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:  # reaped meanwhile
        return False
    try:
        if pid not in own_robots():  # the pidfd is another process's: the pid was reused
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except ProcessLookupError:  # it ended on its own meanwhile
        return False
    finally:
        os.close(pidfd)
