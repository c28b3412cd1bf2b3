"""What is really running in a lab: per host process, SSH reachability; leftovers after destroy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gestic.lab import host as lab_host
from gestic.lab import network as lab_network
from gestic.model import Model


@dataclass(frozen=True, kw_only=True)
class HostStatus:
    name: str
    site: str
    address: str
    pid: int | None
    ssh: bool

    @property
    def up(self) -> bool:
        return self.pid is not None and self.ssh


def host_statuses(model: Model, *, lab: str, lab_state_dir: Path) -> list[HostStatus]:
    router_up = bool(lab_network.lab_namespaces(lab))
    result = []
    for host in sorted(model.hosts.values(), key=lambda h: (h.site, h.name)):
        pid = lab_host.host_pid(state_dir=lab_state_dir, name=host.name)
        ssh = (
            router_up and pid is not None and lab_network.tcp_reachable(lab, host.address, 22, 1.0)
        )
        result.append(
            HostStatus(name=host.name, site=host.site, address=str(host.address), pid=pid, ssh=ssh)
        )
    return result


@dataclass(frozen=True, kw_only=True)
class Leftovers:
    namespaces: list[str]
    mounts: list[str]
    processes: list[int]

    @property
    def clean(self) -> bool:
        return not (self.namespaces or self.mounts or self.processes)


def _processes_using(path: Path) -> list[int]:
    """PIDs whose command line names `path` (a lab's hosts all run from under its state dir)."""
    needle = str(path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def leftovers(*, lab: str, lab_state_dir: Path) -> Leftovers:
    """Anything of this lab still on the machine: namespaces, mounts, host processes."""
    return Leftovers(
        namespaces=lab_network.lab_namespaces(lab),
        mounts=lab_host.lab_mounts(lab_state_dir),
        processes=_processes_using(lab_state_dir),
    )
