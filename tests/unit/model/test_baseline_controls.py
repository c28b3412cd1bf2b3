"""The baseline's numbered controls: catalogue, role tasks, verify checks and docs agree.

Read from the files (yaml.safe_load, ast): no lab. The catalogue is the role's
`baseline_controls` (playbooks/roles/baseline/vars/main.yml); every hardening task is named
`<id> | <AREA> | <what>` inside its control's block (tagged with the id, skipped when the id is in
`baseline_controls_disabled`); every check of verify/test_baseline.py is marked with one id.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gestic.model.controls import CATALOGUE, disabled_controls, host_var, load_catalogue

from ...paths import ROOT

ROLE = ROOT / "playbooks" / "roles" / "baseline"
CHECKS = ROOT / "verify" / "test_baseline.py"
DOC = ROOT / "docs" / "baseline.md"
PROCESS = ROOT / "docs" / "process.yml"

AREAS = {"SSH", "PASSWORD", "SUDO", "AUDIT", "KERNEL", "PATCH", "TIME", "BANNER", "IDENTITY"}
GUIDES = {
    "GCS": "Guía de Contraseñas Seguras",
    "GIS": "Guía Instalación/Desinstalación de Software",
    "GAL": "Guía Requerimientos para Auditoria de Logs",
    "GBS": "gestic base hardening",
}
ID = re.compile(r"^(?P<prefix>[A-Z]{3})-(?P<section>\d+\.\d+)$")
NAME = re.compile(r"^(?P<id>[A-Z]{3}-\d+\.\d+) \| (?P<area>[A-Z]+) \| (?P<text>\S.*)$")

#: the tasks of tasks/main.yml that are not numbered, and why (each also says so in a comment)
UNNUMBERED = {
    "Refuse to disable a control the catalogue does not know": "checks the switch list itself",
    "Find out whether the host is a container": "a fact the controls share",
    "Remember whether the host is a container": "the same shared fact",
}


def _catalogue() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load((ROOT / CATALOGUE).read_text())[
        "baseline_controls"
    ]
    return entries


def _ids() -> list[str]:
    return [c["id"] for c in _catalogue()]


def _tasks(
    tasks: list[dict[str, Any]], blocks: tuple[dict[str, Any], ...] = ()
) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every task that is not a block, with the blocks around it (outermost first)."""
    for task in tasks:
        if "block" in task:
            yield from _tasks(task["block"], (*blocks, task))
        else:
            yield task, blocks


def _task_files() -> list[Path]:
    """tasks/main.yml and the files it imports, in the role's order (and no other file)."""
    main = ROLE / "tasks" / "main.yml"
    tasks = yaml.safe_load(main.read_text())
    imports = [t.get("ansible.builtin.import_tasks") for t in tasks]
    files = [main, *(ROLE / "tasks" / name for name in imports if name)]
    assert sorted(files) == sorted((ROLE / "tasks").glob("*.yml")), "a task file not imported"
    return files


def _role_tasks() -> Iterator[tuple[str, dict[str, Any], tuple[dict[str, Any], ...]]]:
    for file in _task_files():
        for task, blocks in _tasks(yaml.safe_load(file.read_text()) or []):
            yield file.name, task, blocks


def _blocks() -> Iterator[tuple[str, dict[str, Any]]]:
    for file in _task_files():
        for item in yaml.safe_load(file.read_text()) or []:
            if "block" in item:
                yield file.name, item


def _checks() -> dict[str, list[str]]:
    """check function of verify/test_baseline.py -> the ids of its `control` markers."""
    found: dict[str, list[str]] = {}
    for node in ast.parse(CHECKS.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            found[node.name] = [
                d.args[0].value
                for d in node.decorator_list
                if isinstance(d, ast.Call)
                and ast.unparse(d.func) == "pytest.mark.control"
                and isinstance(d.args[0], ast.Constant)
            ]
            assert "host" in [a.arg for a in node.args.args], f"{node.name}: needs the host"
    return found


def test_the_catalogue_is_well_formed() -> None:
    entries = _catalogue()
    ids = _ids()
    assert len(ids) == len(set(ids)), "an id is used twice"
    titles = [c["title"] for c in entries]
    assert len(titles) == len(set(titles)), "two controls with the same title"
    for control in entries:
        assert set(control) == {"id", "section", "area", "title", "guide", "process"}, control
        match = ID.match(control["id"])
        assert match, control["id"]
        assert match["section"] == control["section"], control["id"]
        assert control["area"] in AREAS, control["id"]
        assert GUIDES[match["prefix"]] == control["guide"], control["id"]
        assert "|" not in control["title"], control["id"]


def test_each_guide_is_the_process_maps_entry_and_names_the_role() -> None:
    entries = {e["id"]: e for e in yaml.safe_load(PROCESS.read_text())["entries"]}
    for control in _catalogue():
        if control["id"].startswith("GBS-"):
            assert control["process"] is None, control["id"]  # gestic's own: no guide
            continue
        entry = entries[control["process"]]
        assert entry["kind"] == "guide", control["id"]
        assert entry["name"] == control["guide"], control["id"]
        assert "playbooks/roles/baseline" in entry["code"], control["id"]


def test_the_loader_reads_the_same_catalogue() -> None:
    loaded = load_catalogue(ROOT)
    assert list(loaded) == _ids()
    assert loaded["GCS-1.1"].guide == "Guía de Contraseñas Seguras"


def test_every_task_is_numbered_or_explicitly_unnumbered() -> None:
    catalogue = {c["id"]: c for c in _catalogue()}
    for file, task, blocks in _role_tasks():
        name = task["name"]
        if file == "main.yml" and not blocks:
            if "ansible.builtin.import_tasks" in task:
                continue  # structure: each imported file holds its controls' blocks
            assert name in UNNUMBERED, f"main.yml: {name!r} is neither numbered nor listed"
            assert task["tags"] == _ids(), f"{name}: must carry every control's tag"
            continue
        match = NAME.match(name)
        assert match, f"{file}: {name!r} is not '<id> | <AREA> | <what>'"
        assert match["id"] in catalogue, f"{file}: {name}: unknown id"
        assert match["area"] == catalogue[match["id"]]["area"], f"{file}: {name}: wrong area"
        assert "tags" not in task, f"{file}: {name}: the control's block tags it"
        (block,) = blocks  # one block, the control's, around every numbered task
        assert block["name"].startswith(f"{match['id']} | "), f"{file}: {name}: in another block"


def test_each_control_is_one_block_tagged_and_switched_by_its_id() -> None:
    catalogue = {c["id"]: c for c in _catalogue()}
    seen: list[str] = []
    for file, block in _blocks():
        match = NAME.match(block["name"])
        assert match, f"{file}: block {block['name']!r}"
        control = catalogue[match["id"]]
        assert block["name"] == f"{control['id']} | {control['area']} | {control['title']}"
        assert block["tags"] == [control["id"]], block["name"]
        assert block["when"] == f"'{control['id']}' not in baseline_controls_disabled"
        seen.append(control["id"])
    assert sorted(seen) == sorted(catalogue), "a control with no block, or with two"
    assert seen == _ids(), "the catalogue lists the controls in the role's order"


def test_every_check_verifies_one_control_and_every_control_has_a_check() -> None:
    checks = _checks()
    assert checks
    for name, ids in checks.items():
        assert len(ids) == 1, f"{name}: one control marker, not {ids}"
        assert ids[0] in _ids(), f"{name}: unknown control {ids[0]}"
    verified = {ids[0] for ids in checks.values()}
    assert verified == set(_ids()), f"controls without a check: {set(_ids()) - verified}"


def test_the_marker_is_registered_and_the_switch_declared() -> None:
    assert '"control(id):' in (ROOT / "verify" / "conftest.py").read_text()
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["baseline_controls_disabled"] == []
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    option = spec["argument_specs"]["main"]["options"]["baseline_controls_disabled"]
    assert option["type"] == "list"
    assert option["elements"] == "str"
    assert option["default"] == []
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert set(role_vars) == {"baseline_controls"}, "the catalogue only: vars are not overridable"


def test_the_docs_table_lists_every_control_with_its_checks() -> None:
    rows = {
        line.split("|")[1].strip(): line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and ID.match(line.split("|")[1].strip())
    }
    assert list(rows) == _ids()
    for name, (control,) in _checks().items():
        assert f"`{name}`" in rows[control], f"docs/baseline.md: {control} row misses {name}"
    for control in _catalogue():
        assert f"| {control['area']} |" in rows[control["id"]], control["id"]


# --- which controls an inventory disables on a host ------------------------------------------

HOSTS_YML = """
all:
  vars:
    baseline_controls_disabled: [FROM-INVENTORY-ALL]
  children:
    principal:
      hosts:
        web-p1: {gestic_address: 10.0.0.1}
        db-p1: {gestic_address: 10.0.0.2}
        svc-p1: {baseline_controls_disabled: [GBS-1.1]}
    web:
      hosts:
        web-p1:
    zeta:
      hosts:
        web-p1:
"""


def _inventory(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "hosts.yml").write_text(HOSTS_YML)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_switch_is_read_in_ansibles_order(tmp_path: Path) -> None:
    inv = _inventory(
        tmp_path,
        {
            "group_vars/all/baseline.yml": "baseline_controls_disabled: [GBS-6.2]\n",
            "group_vars/all/vault.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162\n",
            "group_vars/web/baseline.yml": "baseline_controls_disabled: [GIS-1.1]\n",
            "group_vars/zeta.yml": "baseline_controls_disabled: [GIS-1.2]\n",
        },
    )
    assert disabled_controls(inv, "db-p1") == {"GBS-6.2"}  # group_vars/all over hosts.yml vars
    assert disabled_controls(inv, "web-p1") == {"GIS-1.2"}  # groups by name: zeta after web
    assert disabled_controls(inv, "svc-p1") == {"GBS-1.1"}  # host vars over group vars
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "svc-p1.yml").write_text("baseline_controls_disabled: []\n")
    assert disabled_controls(inv, "svc-p1") == frozenset()  # host_vars/ last


def test_without_any_setting_nothing_is_disabled(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    web-p1:\n")
    assert disabled_controls(tmp_path, "web-p1") == frozenset()
    assert host_var(tmp_path, "web-p1", "baseline_controls_disabled", "none") == "none"


@pytest.mark.parametrize("inventory", ["lab", "production"])
def test_the_repositorys_inventories_disable_only_known_controls(inventory: str) -> None:
    inv = ROOT / "inventory" / inventory
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    names = {h for g in hosts["all"]["children"].values() for h in (g.get("hosts") or {})}
    for name in names:
        assert disabled_controls(inv, name) <= set(_ids()), name
