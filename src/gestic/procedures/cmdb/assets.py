"""The asset and configuration inventory (Activos y Configuración TI): model + gathered facts.

Each host's record joins what the model declares (site, groups, owner, address, services with
their tier) with what Ansible finds on the host (OS, kernel, CPUs, memory, packages and versions).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gestic.model import Model


@dataclass(frozen=True, kw_only=True)
class Asset:
    name: str
    site: str
    address: str
    owner: str
    groups: list[str]
    services: list[dict[str, Any]]
    os: str = ""
    kernel: str = ""
    virtualization: str = ""
    cpus: int | None = None
    memory_mb: int | None = None
    packages: dict[str, str] = field(default_factory=dict)
    reachable: bool = False


class FactCollector:
    """Receives ansible-runner events and keeps each host's facts and packages."""

    def __init__(self) -> None:
        self.facts: dict[str, dict[str, Any]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "runner_on_ok":
            return
        data = event.get("event_data", {})
        found = data.get("res", {}).get("ansible_facts")
        if isinstance(found, dict) and data.get("host"):
            self.facts.setdefault(data["host"], {}).update(found)


def _packages(facts: dict[str, Any]) -> dict[str, str]:
    packages = facts.get("packages") or {}
    return {
        name: ",".join(sorted({str(p.get("version", "")) for p in versions}))
        for name, versions in sorted(packages.items())
    }


def build_assets(model: Model, facts: dict[str, dict[str, Any]]) -> list[Asset]:
    """One asset per model host, with the facts gathered from it when it was reachable."""
    assets = []
    for host in sorted(model.hosts.values(), key=lambda h: (h.site, h.name)):
        found = facts.get(host.name, {})
        services = [
            {"name": s.name, "tier": s.tier, "role": "primary" if host.name in s.hosts else "dr"}
            for s in sorted(model.services_on(host.name), key=lambda s: s.name)
        ]
        os_name = " ".join(
            str(found.get(k, "")) for k in ("ansible_distribution", "ansible_distribution_version")
        ).strip()
        assets.append(
            Asset(
                name=host.name,
                site=host.site,
                address=str(host.address),
                owner=host.owner,
                groups=list(host.groups),
                services=services,
                os=os_name,
                kernel=str(found.get("ansible_kernel", "")),
                virtualization=str(found.get("ansible_virtualization_type", "")),
                cpus=found.get("ansible_processor_vcpus"),
                memory_mb=found.get("ansible_memtotal_mb"),
                packages=_packages(found),
                reachable=bool(found),
            )
        )
    return assets


def write_exports(assets: list[Asset], out_dir: Path, *, environment: str) -> list[Path]:
    """Write cmdb.json, cmdb-hosts.csv and cmdb-packages.csv into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "cmdb.json"
    document = {
        "environment": environment,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "assets": [asdict(a) for a in assets],
    }
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    hosts_path = out_dir / "cmdb-hosts.csv"
    with hosts_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["host", "site", "address", "owner", "groups", "services", "os", "kernel",
             "virtualization", "cpus", "memory_mb", "packages", "reachable"]
        )  # fmt: skip
        for a in assets:
            writer.writerow(
                [a.name, a.site, a.address, a.owner, " ".join(a.groups),
                 " ".join(f"{s['name']}(tier {s['tier']}, {s['role']})" for s in a.services),
                 a.os, a.kernel, a.virtualization, a.cpus or "", a.memory_mb or "",
                 len(a.packages), "yes" if a.reachable else "no"]
            )  # fmt: skip
    packages_path = out_dir / "cmdb-packages.csv"
    with packages_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["host", "site", "package", "version"])
        for a in assets:
            for name, version in a.packages.items():
                writer.writerow([a.name, a.site, name, version])
    return [json_path, hosts_path, packages_path]
