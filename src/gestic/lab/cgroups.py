"""Lab hosts' cgroups: one per host in every mounted hierarchy (v1, hybrid or v2), with its
memory and CPU limits, emptied by PID and removed with rmdir when the host stops."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gestic.errors import LabError
from gestic.lab import names

if TYPE_CHECKING:
    from gestic.lab.host import HostSpec

CGROUP_ROOT = Path("/sys/fs/cgroup")
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    controllers: frozenset[str]  # empty for the cgroup v2 (unified) hierarchy
    mount: Path
    path: str  # this process's cgroup in it

    def child(self, name: str) -> Path:
        return self.mount / self.path.lstrip("/") / name


def mounted_hierarchies() -> list[Hierarchy]:
    """This process's cgroup in every mounted hierarchy (v1, hybrid or v2 layouts)."""
    mounts: list[tuple[str, frozenset[str], Path]] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            fields = line.split()
            sep = fields.index("-")
            fstype = fields[sep + 1]
            if fstype in ("cgroup", "cgroup2"):
                opts = frozenset(fields[sep + 3].split(","))
                mounts.append((fstype, opts, Path(fields[4])))
    found: list[Hierarchy] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, ctrls, path = line.split(":", 2)
        wanted = frozenset(c for c in ctrls.split(",") if c)
        for fstype, opts, point in mounts:
            v2_match = not wanted and fstype == "cgroup2"
            if v2_match or (wanted and fstype == "cgroup" and wanted <= opts):
                found.append(Hierarchy(wanted, point, path))
                break
    return found


def cgroup_plan(spec: HostSpec) -> dict[Path, dict[str, str]]:
    """The host's cgroup dirs and the limit files to write in each."""
    hierarchies = mounted_hierarchies()
    machine = names.machine(spec.lab, spec.name)
    plan: dict[Path, dict[str, str]] = {
        h.child(machine): {}
        for h in hierarchies
        if not h.controllers or "name=systemd" in h.controllers
    }
    if not plan:
        raise LabError("no cgroup hierarchy found under /sys/fs/cgroup: cannot place a host")
    if spec.memory_max_bytes is not None:
        h = controller(hierarchies, "memory")
        key = "memory.max" if not h.controllers else "memory.limit_in_bytes"
        plan.setdefault(h.child(machine), {})[key] = str(spec.memory_max_bytes)
    if spec.cpu_max is not None:
        h = controller(hierarchies, "cpu")
        quota = max(1000, int(spec.cpu_max * _CPU_PERIOD_US))
        limits = plan.setdefault(h.child(machine), {})
        if h.controllers:
            limits["cpu.cfs_period_us"] = str(_CPU_PERIOD_US)
            limits["cpu.cfs_quota_us"] = str(quota)
        else:
            limits["cpu.max"] = f"{quota} {_CPU_PERIOD_US}"
    return plan


def controller(hierarchies: list[Hierarchy], controller: str) -> Hierarchy:
    """The hierarchy that has `controller`: a v1 one, else v2 with it enabled for children."""
    for h in hierarchies:
        if controller in h.controllers:
            return h
    for h in hierarchies:
        parent = h.child("")
        if not h.controllers and controller in (parent / "cgroup.controllers").read_text().split():
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(f"+{controller}")
            return h
    raise LabError(f"the {controller} cgroup controller is not available: cannot limit a host")


def make_cgroups(spec: HostSpec) -> list[Path]:
    made: list[Path] = []
    for path, limits in cgroup_plan(spec).items():
        if path.exists():  # left by a host that was killed: empty and drop it first
            kill_cgroup(path)
            remove_cgroup(path)
        try:
            path.mkdir()
            for name, value in limits.items():
                (path / name).write_text(value)
        except OSError as exc:
            raise LabError(f"cannot set up cgroup {path} for host {spec.name}: {exc}") from exc
        made.append(path)
    return made


def recorded_cgroups(record: Path) -> list[Path]:
    """The cgroups recorded at start in `record`, checked to be a host's own (exact name)."""
    try:
        lines = record.read_text().split()
    except FileNotFoundError:
        return []
    return [
        Path(line)
        for line in lines
        if Path(line).is_relative_to(CGROUP_ROOT) and Path(line).name.startswith("gestic-")
    ]


def kill_cgroup(path: Path, timeout: float = 5) -> None:
    """SIGKILL every process left in a host's cgroup tree, by PID, until it is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = cgroup_pids(path) - {os.getpid()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise LabError(f"processes still alive in {path} after SIGKILL: {sorted(cgroup_pids(path))}")


def cgroup_pids(path: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def remove_cgroup(path: Path) -> None:
    """rmdir a cgroup tree bottom-up (cgroup dirs are only ever removed with rmdir)."""
    for _ in range(50):
        if not path.exists():
            return
        for dirpath, _dirs, _files in os.walk(path, topdown=False):
            with contextlib.suppress(FileNotFoundError, OSError):
                os.rmdir(dirpath)
        time.sleep(0.05)
    if path.exists():
        raise LabError(f"cannot remove cgroup {path}: still busy")
