"""Lab hosts: systemd-nspawn containers booting real systemd on an overlay of the host image.

Each host lives in `<state_dir>/hosts/<name>/`: `upper/` and `work/` (its own writes, kept
across stop/start like a disk), `root/` (the overlay mount nspawn boots), `nspawn.pid`,
`cgroups` (the ones `gestic.lab.cgroups` made for it) and `console.log`. A host is a detached
process in its own session, so it outlives the Python process that started it; it is stopped
by PID and its own cgroups, never by name patterns.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from gestic.errors import LabError
from gestic.lab import names
from gestic.lab.cgroups import kill_cgroup, make_cgroups, recorded_cgroups, remove_cgroup
from gestic.lab.image import (
    AUTOMATION_UID,
    AUTOMATION_USER,
    locked,
    mounts_under,
    require_root,
    run,
)
from gestic.lab.network import tcp_reachable

HOSTS = "hosts"
MERGED = "root"
UPPER = "upper"
WORK = "work"
PIDFILE = "nspawn.pid"
CGROUPS = "cgroups"
CONSOLE = "console.log"
LOCK = "lock"

_NSPAWN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# nspawn must start inside the host's own cgroups: with --keep-unit it splits the cgroup it
# finds itself in into payload/ and supervisor/, so two hosts sharing the caller's cgroup would
# share one payload/ and their systemd instances would manage each other's units. This tiny
# launcher joins the cgroups, then becomes systemd-nspawn (same PID).
_JOIN_AND_EXEC = """\
import os, sys
sep = sys.argv.index("--")
for procs in sys.argv[1:sep]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
os.execv(sys.argv[sep + 1], sys.argv[sep + 1:])
"""

# Hosts this process started: kept so they are reaped (no zombies) and never garbage-collected
# while running. Hosts started by an earlier process are found through their pidfile.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True, kw_only=True)
class HostSpec:
    """Everything needed to boot one lab host."""

    lab: str
    name: str
    image_rootfs: Path
    state_dir: Path
    netns_path: str
    address: IPv4Address
    authorized_keys: str
    etc_hosts: Mapping[str, str] = field(default_factory=dict)
    memory_max_bytes: int | None = None
    cpu_max: float | None = None  # in CPUs, e.g. 0.5

    @property
    def host_dir(self) -> Path:
        return host_dir(self.state_dir, self.name)


def host_dir(state_dir: Path, name: str) -> Path:
    """The per-host directory `<state_dir>/hosts/<name>` (absolute)."""
    return state_dir.resolve() / HOSTS / names.check_host(name)


def start_host(spec: HostSpec, *, ssh_timeout: float = 60) -> int:
    """Boot the host (if it is not already running) and wait for its sshd; return nspawn's PID."""
    require_root("starting a lab host")
    names.check_lab(spec.lab)
    hdir = spec.host_dir
    hdir.mkdir(parents=True, exist_ok=True)
    with locked(hdir / LOCK):
        pid = _live_pid(hdir)
        if pid is not None:
            return pid
        _check_inputs(spec)
        _ensure_inotify_instances()
        _release(hdir)  # leftovers of a host that died without stop_host
        _mount_overlay(spec)
        _provision(spec)
        pid = _launch(spec)
        try:
            _wait_for_ssh(spec, pid, ssh_timeout)
        except BaseException:
            _stop_locked(hdir, timeout=10)
            raise
    return pid


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_INSTANCES_MIN = 1024
"""Every booted systemd takes several inotify instances, all counted against root: Debian's
default of 128 was exhausted here with two labs up at once, and further hosts failed to boot."""


def _ensure_inotify_instances() -> None:
    """Raise the kernel's per-user inotify instance limit if it is below what labs need."""
    try:
        current = int(INOTIFY_INSTANCES.read_text())
        if current < INOTIFY_INSTANCES_MIN:
            INOTIFY_INSTANCES.write_text(f"{INOTIFY_INSTANCES_MIN}\n")
    except (OSError, ValueError) as exc:
        raise LabError(
            f"cannot raise {INOTIFY_INSTANCES} to {INOTIFY_INSTANCES_MIN} ({exc}): lab hosts "
            "boot systemd, which needs inotify instances; raise it with sysctl"
        ) from exc


def write_identity(spec: HostSpec) -> None:
    """(Re)write the host's name, /etc/hosts and root's authorized_keys, running or not."""
    require_root("writing a lab host's identity")
    hdir = spec.host_dir
    if _mount_options(hdir / MERGED) is None:
        raise LabError(f"host {spec.name} has no mounted root: start_host first")
    with locked(hdir / LOCK):
        _provision(spec)


def host_pid(*, state_dir: Path, name: str) -> int | None:
    """The PID of the host's systemd-nspawn if it is alive, else None."""
    return _live_pid(host_dir(state_dir, name))


def stop_host(*, state_dir: Path, name: str, timeout: float = 20) -> None:
    """Power the host off (SIGTERM to nspawn, SIGKILL after `timeout`) and unmount its root."""
    hdir = host_dir(state_dir, name)
    if not hdir.is_dir():
        return
    require_root("stopping a lab host")
    with locked(hdir / LOCK):
        _stop_locked(hdir, timeout)


def power_cut(*, state_dir: Path, name: str) -> bool:
    """Cut the host's power: SIGKILL every process of it at once (no shutdown, nothing
    flushed or stopped cleanly), then unmount its root. Its disk (upper/) stays, so
    `start_host` boots it again as after a crash. False if it was not running."""
    hdir = host_dir(state_dir, name)
    if not hdir.is_dir():
        return False
    require_root("cutting a lab host's power")
    with locked(hdir / LOCK):
        running = _live_pid(hdir) is not None
        _release(hdir)  # SIGKILL by cgroup: nspawn, the host's systemd and all it started
        _unmount_all(hdir)
    return running


def remove_host_dir(*, state_dir: Path, name: str) -> None:
    """Delete a stopped host's directory, its disk (upper/work) included."""
    hdir = host_dir(state_dir, name)
    if not hdir.exists():
        return
    if _live_pid(hdir) is not None:
        raise LabError(f"host {name} is still running: stop_host before removing {hdir}")
    if mounted := mounts_under(hdir):
        raise LabError(f"cannot remove {hdir}: still mounted: {', '.join(mounted)}")
    shutil.rmtree(hdir)


def lab_mounts(state_dir: Path) -> list[str]:
    """Mount points at or below `state_dir` (the hosts' overlays), deepest first."""
    return mounts_under(state_dir)


def host_memory_bytes(pid: int) -> int:
    """Memory used by a host: PSS summed over nspawn's whole process tree (0 if it is gone)."""
    return sum(_pss_bytes(p) for p in process_tree(pid))


def nspawn_command(spec: HostSpec, nspawn: str = "systemd-nspawn") -> list[str]:
    """The systemd-nspawn command line that boots the host."""
    machine = names.machine(spec.lab, spec.name)
    return [
        nspawn,
        "--boot",
        # No machined/system bus here: without these two, "Failed to open system bus".
        "--register=no",
        "--keep-unit",
        "--quiet",
        f"--directory={spec.host_dir / MERGED}",
        f"--machine={machine}",
        # A stable UUID gives the host a stable machine-id across restarts.
        f"--uuid={uuid.uuid5(uuid.NAMESPACE_DNS, f'{machine}.gestic.lab')}",
        f"--network-namespace-path={spec.netns_path}",
        # root on the host may change its own namespace's routes, as on a real host (a test
        # drill outside the lab isolates with routes on the recovered hosts: dr.host_isolation)
        "--capability=CAP_NET_ADMIN",
        f"--hostname={spec.name}",
        # No TTY: forward the console to our stdout (console.log), take no input.
        "--console=read-only",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--settings=no",
    ]


def is_nspawn_cmdline(cmdline: bytes, merged: Path) -> bool:
    """True if a /proc/<pid>/cmdline is systemd-nspawn booting the tree at `merged`."""
    args = cmdline.rstrip(b"\0").split(b"\0")
    return (
        os.path.basename(args[0]) == b"systemd-nspawn"
        and f"--directory={merged}".encode() in args[1:]
    )


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants that still exist (via /proc/<pid>/task/*/children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if not Path(f"/proc/{current}").exists():
            continue
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def hosts_file(name: str, etc_hosts: Mapping[str, str]) -> str:
    """/etc/hosts for a host: loopback names, then every lab host (its own name included).

    127.0.1.1 names the host only when the lab does not list it: a host's name must resolve to
    its lab address, or services that bind to their hostname would listen on loopback.
    """
    own = [] if name in etc_hosts else [f"127.0.1.1\t{name}"]
    lines = [
        "127.0.0.1\tlocalhost",
        *own,
        "::1\tlocalhost ip6-localhost ip6-loopback",
        *(f"{etc_hosts[other]}\t{other}" for other in sorted(etc_hosts)),
    ]
    return "\n".join(lines) + "\n"


# --- starting ---------------------------------------------------------------------------


def _check_inputs(spec: HostSpec) -> None:
    if not (spec.image_rootfs / "usr/lib/systemd/systemd").exists():
        raise LabError(f"{spec.image_rootfs} is not a host image rootfs (no systemd in it)")
    if not Path(spec.netns_path).exists():
        raise LabError(f"network namespace {spec.netns_path} is missing: attach_host first")
    for path in (spec.image_rootfs.resolve(), spec.host_dir):
        if set(str(path)) & {",", ":"}:
            raise LabError(f"overlayfs cannot use a path with ',' or ':': {path}")


def _mount_overlay(spec: HostSpec) -> None:
    """Mount image (lower) + per-host upper/work at root/, unless already mounted so."""
    hdir = spec.host_dir
    merged = hdir / MERGED
    lower = spec.image_rootfs.resolve()
    options = f"lowerdir={lower},upperdir={hdir / UPPER},workdir={hdir / WORK}"
    current = _mount_options(merged)
    if current is not None and f"lowerdir={lower}," in current + ",":
        return
    if current is not None:  # mounted over another image: start over on the new one
        _unmount_all(hdir)
    for sub in (UPPER, WORK, MERGED):
        (hdir / sub).mkdir(exist_ok=True)
    run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        f"mounting the overlay root of host {spec.name}",
    )


def _mount_options(point: Path) -> str | None:
    """The super options of the overlay mounted at `point`, or None if none is."""
    target = str(point)
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == target and fields[sep + 1] == "overlay":
                return fields[sep + 3]
    return None


def _provision(spec: HostSpec) -> None:
    """Write the host's identity and the automation account's ssh key into its tree."""
    root = spec.host_dir / MERGED
    _write_file(root / "etc/hostname", f"{spec.name}\n", 0o644)
    _write_file(root / "etc/hosts", hosts_file(spec.name, spec.etc_hosts), 0o644)
    ssh_dir = root / "home" / AUTOMATION_USER / ".ssh"
    if ssh_dir.is_symlink():
        ssh_dir.unlink()
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    keys = spec.authorized_keys.strip() + "\n"
    _write_file(ssh_dir / "authorized_keys", keys, 0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, AUTOMATION_UID, AUTOMATION_UID, follow_symlinks=False)


def _write_file(path: Path, text: str, mode: int) -> None:
    """Write a file in a host tree without following a symlink planted there."""
    if path.is_symlink():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(mode)


def _launch(spec: HostSpec) -> int:
    """Start nspawn detached (own session, own cgroups); record and return its PID."""
    hdir = spec.host_dir
    nspawn = shutil.which("systemd-nspawn")
    if nspawn is None:
        raise LabError("systemd-nspawn not found: install the Debian package systemd-container")
    cgroups = make_cgroups(spec)
    (hdir / CGROUPS).write_text("".join(f"{c}\n" for c in cgroups))
    procs = [str(c / "cgroup.procs") for c in cgroups]
    cmd = [sys.executable or "python3", "-I", "-S", "-c", _JOIN_AND_EXEC, *procs, "--"]
    cmd += nspawn_command(spec, nspawn)
    with open(hdir / CONSOLE, "wb") as console:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=_NSPAWN_ENV,
        )
    _CHILDREN[proc.pid] = proc
    (hdir / PIDFILE).write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_for_ssh(spec: HostSpec, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not _running(pid):
            raise LabError(
                f"host {spec.name}: systemd-nspawn exited while booting; console tail:\n"
                + _console_tail(spec.host_dir)
            )
        if tcp_reachable(spec.lab, spec.address, 22, 0.5):
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"host {spec.name}: ssh on {spec.address}:22 did not answer within "
                f"{timeout:.0f} s; console tail:\n" + _console_tail(spec.host_dir)
            )
        time.sleep(0.1)


def _console_tail(hdir: Path, lines: int = 40) -> str:
    try:
        text = (hdir / CONSOLE).read_text(errors="replace")
    except OSError:
        return "(no console.log)"
    return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])


# --- cgroups ------------------------------------------------------------------------------


# --- stopping -----------------------------------------------------------------------------


def _stop_locked(hdir: Path, timeout: float) -> None:
    pid = _live_pid(hdir)
    if pid is not None:
        _terminate(pid, timeout)
    _release(hdir)
    _unmount_all(hdir)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM nspawn (it powers the container off); SIGKILL its process group if it hangs."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _wait_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:  # its own group, from start_new_session
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5)


def _release(hdir: Path) -> None:
    """Kill what is left in the host's cgroups, remove them and the runtime files."""
    for path in recorded_cgroups(hdir / CGROUPS):
        if path.exists():
            kill_cgroup(path)
            remove_cgroup(path)
    for runtime in (PIDFILE, CGROUPS):
        (hdir / runtime).unlink(missing_ok=True)


def _unmount_all(hdir: Path) -> None:
    """Unmount everything under the host dir; lazily if it stays busy."""
    for point in mounts_under(hdir):
        for _ in range(10):
            done = subprocess.run(["umount", point], check=False, capture_output=True)
            if done.returncode == 0 or point not in mounts_under(hdir):
                break
            time.sleep(0.2)
        else:
            run(["umount", "-l", point], f"lazily unmounting {point}")
    if left := mounts_under(hdir):
        raise LabError(f"still mounted after unmounting: {', '.join(left)}")


# --- process checks -----------------------------------------------------------------------


def _live_pid(hdir: Path) -> int | None:
    try:
        pid = int((hdir / PIDFILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _running(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if is_nspawn_cmdline(cmdline, hdir / MERGED) else None


def _running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (reaping it if it is our child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.05)
    return not _running(pid)


def _pss_bytes(pid: int) -> int:
    """Proportional set size of one process (shared pages split among their users)."""
    for source, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(source).read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return 0
