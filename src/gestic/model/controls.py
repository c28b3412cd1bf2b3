"""The baseline's numbered controls: the catalogue, and which of them an inventory switches off.

The catalogue is the baseline role's `baseline_controls` (playbooks/roles/baseline/vars/main.yml):
one id per control (`GCS-1.1`: prefix of the guide, section), its area, title and guide. An
inventory disables controls with `baseline_controls_disabled` (a list of ids) in its group_vars
or host vars; `disabled_controls` reads the value a host gets, in Ansible's order, so that
`gestic verify` skips the checks of exactly the controls the role skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gestic.errors import ModelError
from gestic.model.loader import is_vault_file
from gestic.model.yamlsrc import SourceMap, load_yaml

CATALOGUE = Path("playbooks") / "roles" / "baseline" / "vars" / "main.yml"
CATALOGUE_KEY = "baseline_controls"
DISABLED_VAR = "baseline_controls_disabled"
#: junit properties of a verify check (verify/conftest.py): the id of the control it verifies,
#: and, when it was skipped because the inventory disables that control, DISABLED_PROPERTY
CONTROL_PROPERTY = "control"
DISABLED_PROPERTY = "control_disabled"


@dataclass(frozen=True, kw_only=True)
class Control:
    id: str
    section: str
    area: str
    title: str
    guide: str
    process: str | None = None  # the docs/process.yml entry of the guide (none: gestic's own)


def load_catalogue(root: Path) -> dict[str, Control]:
    """The controls of the baseline role, by id, in the catalogue's order (`root`: the repo)."""
    file = root / CATALOGUE
    data = load_yaml(file, smap=SourceMap())
    entries = data.get(CATALOGUE_KEY) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModelError([f"{file}: {CATALOGUE_KEY} must be a list of controls"])
    return {str(e["id"]): Control(**e) for e in entries}


VARS_SUFFIXES = (".yml", ".yaml", ".json")


def _yaml_files(base: Path) -> Iterator[Path]:
    """The files Ansible reads as the vars `<name>`: `<name>[.yml|.yaml|.json]`, or in `<name>/`."""
    for file in (base, *(base.with_name(base.name + s) for s in VARS_SUFFIXES)):
        if file.is_file():
            yield file
    if base.is_dir():
        yield from sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in VARS_SUFFIXES)


def _vars_of(base: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for file in _yaml_files(base):
        if is_vault_file(file):  # secrets: never the switch list
            continue
        data = load_yaml(file, smap=SourceMap())
        if isinstance(data, dict):
            merged.update(data)
    return merged


def _walk(
    name: str, group: Any, depth: int, host: str, parents: tuple[str, ...], out: dict[str, Any]
) -> None:
    """Collect, from one group of hosts.yml, the host's groups (with depth) and its vars."""
    if not isinstance(group, dict):
        return
    out["depth"][name] = max(depth, out["depth"].get(name, 0))
    out["group_vars"].setdefault(name, {}).update(group.get("vars") or {})
    hosts = group.get("hosts") or {}
    if host in hosts:
        out["groups"].update((name, *parents))
        out["host_vars"].update(hosts[host] or {})
    for child, sub in (group.get("children") or {}).items():
        _walk(str(child), sub, depth + 1, host, (*parents, name), out)


def host_var(inventory: Path, host: str, name: str, default: Any = None) -> Any:
    """The value of the variable `name` for `host` as an inventory directory sets it.

    Ansible's order, later wins: group vars of hosts.yml, group_vars/all, group_vars/<group>
    (groups by depth, then name), host vars of hosts.yml, host_vars/<host>. Vault files are
    skipped; values are taken as written (not templated); ansible_group_priority is not read.
    """
    tree = load_yaml(inventory / "hosts.yml", smap=SourceMap()) or {}
    found: dict[str, Any] = {"depth": {}, "group_vars": {}, "groups": set(), "host_vars": {}}
    _walk("all", tree.get("all", {}), 0, host, (), found)
    groups = sorted(found["groups"] | {"all"}, key=lambda g: (found["depth"].get(g, 0), g))
    layers = [found["group_vars"].get(g, {}) for g in groups]
    layers += [_vars_of(inventory / "group_vars" / g) for g in groups]
    layers += [found["host_vars"], _vars_of(inventory / "host_vars" / host)]
    value = default
    for layer in layers:
        if name in layer:
            value = layer[name]
    return value


def disabled_controls(inventory: Path, host: str) -> frozenset[str]:
    """The ids of the baseline controls the inventory switches off on `host`."""
    value = host_var(inventory, host, DISABLED_VAR, [])
    if isinstance(value, str):  # the role refuses a string; read it as the list it meant
        value = value.split(",")
    return frozenset(str(v).strip() for v in value or [])
