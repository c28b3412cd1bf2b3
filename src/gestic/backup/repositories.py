"""The backup repositories the inventory declares (group_vars/all/dr_backup.yml), validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gestic.errors import PlanError, YamlSourceError
from gestic.model import Model
from gestic.model.yamlsrc import SourceMap, load_yaml

SETTINGS = Path("group_vars") / "all" / "dr_backup.yml"


@dataclass(frozen=True, kw_only=True)
class Repository:
    name: str
    host: str
    root: str


@dataclass(frozen=True, kw_only=True)
class Repositories:
    repositories: tuple[Repository, ...]
    maintenance_host: str


def load_repositories(inventory: Path, model: Model) -> Repositories:
    """Read and check the repositories against the model; PlanError names file and line."""
    file = inventory / SETTINGS
    smap = SourceMap()
    try:
        raw: Any = load_yaml(file, smap=smap)
    except YamlSourceError as exc:
        raise PlanError([str(exc)]) from exc
    problems: list[str] = []

    def where(*key: str | int) -> str:
        origin = smap.locate(key)
        return f"{origin or file}: {'.'.join(str(k) for k in key)}"

    if not isinstance(raw, dict):
        raise PlanError([f"{file}:1: expected a mapping"])
    repos: list[Repository] = []
    for i, entry in enumerate(raw.get("gestic_backup_repositories") or []):
        if not isinstance(entry, dict) or not {"name", "host", "root"} <= set(entry):
            problems.append(f"{where('gestic_backup_repositories', i)}: needs name, host, root")
            continue
        if entry["host"] not in model.hosts:
            problems.append(
                f"{where('gestic_backup_repositories', i, 'host')}: unknown host '{entry['host']}'"
            )
        if not str(entry["root"]).startswith("/"):
            problems.append(f"{where('gestic_backup_repositories', i, 'root')}: must be absolute")
        repos.append(Repository(name=entry["name"], host=entry["host"], root=str(entry["root"])))
    if not repos:
        problems.append(f"{where('gestic_backup_repositories')}: declare at least one repository")
    maintenance = (raw.get("gestic_backup_maintenance") or {}).get("host", "")
    if maintenance not in model.hosts:
        problems.append(f"{where('gestic_backup_maintenance', 'host')}: unknown host")
    for name, policy in model.backup_policies.items():
        if policy.copies > len(repos):
            problems.append(
                f"{where('gestic_backup_repositories')}: policy '{name}' keeps {policy.copies} "
                f"copies but only {len(repos)} repositories are declared"
            )
    if problems:
        raise PlanError(problems)
    return Repositories(repositories=tuple(repos), maintenance_host=maintenance)
