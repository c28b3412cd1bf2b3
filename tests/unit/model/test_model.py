"""The model loader: the real inventories load; every kind of bad input names file, key and line."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from gestic.errors import ModelError
from gestic.model import load_model
from gestic.model.routes import _from_proc, machine_routes

from ...paths import LAB_INVENTORY

NO_ROUTES: list[IPv4Network] = []


def _edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, f"fixture text {old!r} not in {file}"
    file.write_text(text.replace(old, new, 1))


def _problems(root: Path, routes: list[IPv4Network] = NO_ROUTES) -> list[str]:
    with pytest.raises(ModelError) as info:
        load_model(root, routes=routes)
    return info.value.problems


def _line_of(file: Path, needle: str) -> int:
    return next(i for i, line in enumerate(file.read_text().splitlines(), 1) if needle in line)


def test_lab_inventory_loads() -> None:
    model = load_model(LAB_INVENTORY, routes=NO_ROUTES)
    assert set(model.sites) == {"principal", "alterno"}
    assert {h.site for h in model.hosts.values()} == {"principal", "alterno"}
    assert model.hosts["db-p1"].groups == ("db", "principal")
    assert str(model.sites["alterno"].gateway) == "10.213.2.1/24"
    tier1 = [s for s in model.services.values() if s.tier == 1]
    assert tier1
    assert all(s.dr_hosts for s in tier1)
    assert model.lab is not None
    assert model.lab.name == "lab"


def test_production_inventory_loads() -> None:
    model = load_model(LAB_INVENTORY.parent / "production", check_machine=False)
    assert model.lab is None
    assert {s.role for s in model.sites.values()} == {"primary", "dr"}


def test_missing_field_names_file_and_line(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    line = _line_of(hosts, "web-p1:")
    _edit(
        hosts,
        "          gestic_owner: infraestructura\n",
        "",
    )
    problems = _problems(lab_inventory)
    assert problems == [
        f"{hosts}:{line}: inventory.all.children.principal.hosts.web-p1: "
        "missing required variable gestic_owner"
    ]


def test_duplicate_host_key_is_reported_with_line(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    _edit(
        hosts,
        "        db-p1:\n",
        "        web-p1:\n          gestic_address: 10.213.1.12\n        db-p1:\n",
    )
    problems = _problems(lab_inventory)
    assert len(problems) == 1
    assert problems[0].startswith(f"{hosts}:")
    assert "duplicate key 'web-p1'" in problems[0]


def test_host_in_two_sites_is_reported(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    _edit(hosts, "    alterno:\n      hosts:\n", "    alterno:\n      hosts:\n        web-p1:\n")
    (problem,) = _problems(lab_inventory)
    assert "web-p1" in problem
    assert "exactly one site group (found: principal, alterno)" in problem


def test_address_outside_site_network(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    _edit(hosts, "10.213.2.21", "10.213.1.99")
    line = _line_of(hosts, "10.213.1.99")
    (problem,) = _problems(lab_inventory)
    assert problem.startswith(f"{hosts}:{line}: ")
    assert "db-a1.gestic_address" in problem
    assert "outside site 'alterno' network 10.213.2.0/24" in problem


def test_duplicate_address_and_gateway(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    _edit(hosts, "10.213.1.21", "10.213.1.11")
    _edit(hosts, "10.213.1.31", "10.213.1.1")
    problems = _problems(lab_inventory)
    assert any("also used by host 'web-p1'" in p for p in problems)
    assert any("is the site gateway" in p for p in problems)


def test_wrong_type_and_unknown_key(lab_inventory: Path) -> None:
    services = lab_inventory / "group_vars" / "all" / "services.yml"
    _edit(services, "    tier: 2\n", "    tier: dos\n    colour: red\n")
    problems = _problems(lab_inventory)
    tier_line = _line_of(services, "tier: dos")
    assert any(
        p.startswith(f"{services}:{tier_line}: gestic_services.transferencia.tier")
        for p in problems
    )
    assert any(
        "gestic_services.transferencia.colour: Extra inputs are not permitted" in p
        for p in problems
    )


def test_unknown_references(lab_inventory: Path) -> None:
    services = lab_inventory / "group_vars" / "all" / "services.yml"
    _edit(services, "dr_hosts: [web-a1]", "dr_hosts: [web-z9]")
    _edit(services, "policy: diario", "policy: semanal")
    problems = _problems(lab_inventory)
    assert any("gestic_services.portal.dr_hosts.0: unknown host 'web-z9'" in p for p in problems)
    assert any("unknown backup policy 'semanal'" in p for p in problems)


def test_range_overlapping_machine_route(lab_inventory: Path) -> None:
    lab_file = lab_inventory / "group_vars" / "all" / "lab.yml"
    (problem,) = _problems(lab_inventory, routes=[IPv4Network("10.213.7.0/24")])
    assert problem.startswith(f"{lab_file}:{_line_of(lab_file, 'range:')}: ")
    assert "overlaps this machine's route 10.213.7.0/24" in problem


def test_site_outside_lab_range(lab_inventory: Path) -> None:
    _edit(lab_inventory / "group_vars" / "all" / "lab.yml", "10.213.0.0/16", "10.214.0.0/16")
    problems = _problems(lab_inventory)
    assert sum("outside the lab range 10.214.0.0/16" in p for p in problems) == 2


def test_invalid_yaml_names_line(lab_inventory: Path) -> None:
    sites = lab_inventory / "group_vars" / "all" / "sites.yml"
    _edit(sites, "role: dr", "role: [dr")
    (problem,) = _problems(lab_inventory)
    # PyYAML names the line where the open flow sequence could not go on: the next key's
    line = _line_of(sites, "role: [dr")
    assert problem.startswith(f"{sites}:{line + 1}: invalid YAML"), problem


# Every group_vars/all concern is a section of the model: (file, text, bad text, key, message).
SECTION_CASES = [
    ("logging.yml", "port: 6514", "port: 70000", "gestic_logging.port", "less than or equal"),
    ("logging.yml", "cert_days: 825", "cert_days: 0", "gestic_logging.cert_days", "greater than"),
    (
        "logging.yml",
        "failure_threshold: 5",
        "failure_threshold: -1",
        "gestic_logging.review.failure_threshold",
        "greater than or equal to 1",
    ),
    ("rpa.yml", "target: 0.95", "target: 0", "gestic_rpa.target", "greater than 0"),
    (
        "rpa.yml",
        "at_risk_window_minutes: 60",
        "at_risk_window_minutes: soon",
        "gestic_rpa.at_risk_window_minutes",
        "valid number",
    ),
    ("rpa.yml", "- revision-accesos", "- Revision_Accesos", "gestic_rpa.bots.2", "pattern"),
    (
        "rpa.yml",
        "scheduler_inventory: inventory/lab",
        "scheduler_inventory: /etc/gestic",
        "gestic_rpa.scheduler_inventory",
        "pattern",
    ),
    ("vulnscan.yml", "min_index: 70", "min_index: 700", "gestic_vulnscan.min_index", "100"),
    (
        "dr_backup.yml",
        "root: /srv/backup-vault",
        "root: srv/backup-vault",
        "gestic_backup_repositories.1.root",
        "pattern",
    ),
    (
        "dr_backup.yml",
        "host: svc-p1",
        "host: svc-p9",
        "gestic_backup_repositories.1.host",
        "unknown host 'svc-p9'",
    ),
    (
        "dr_backup.yml",
        "  host: bkp-a1\n  schedule:",
        "  host: bkp-a9\n  schedule:",
        "gestic_backup_maintenance.host",
        "unknown host 'bkp-a9'",
    ),
    (
        "dr_backup.yml",
        "check_read_data_subset: 10%",
        "check_read_data_subset: 10 %",
        "gestic_backup_maintenance.check_read_data_subset",
        "pattern",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "key", "message"), SECTION_CASES)
def test_a_bad_value_of_each_section_names_file_key_and_line(
    lab_inventory: Path, name: str, old: str, new: str, key: str, message: str
) -> None:
    file = lab_inventory / "group_vars" / "all" / name
    _edit(file, old, new)
    (problem,) = _problems(lab_inventory)
    line = _line_of(file, new.splitlines()[0].strip())
    assert problem.startswith(f"{file}:{line}: {key}: "), problem
    assert message in problem, problem


def test_bad_values_of_every_section_come_in_one_list(lab_inventory: Path) -> None:
    """One load, one list: a bad value in each settings file is reported together."""
    cases = [SECTION_CASES[i] for i in (0, 3, 7, 9)]  # logging, rpa, vulnscan, dr_backup
    assert len({name for name, *_ in cases}) == 4
    for name, old, new, _key, _message in cases:
        _edit(lab_inventory / "group_vars" / "all" / name, old, new)
    problems = _problems(lab_inventory)
    assert [p.split(": ")[1] for p in problems] == [key for *_, key, _message in cases], problems


def test_the_sections_of_the_repository_inventories() -> None:
    for env in ("lab", "production"):
        model = load_model(LAB_INVENTORY.parent / env, check_machine=False)
        assert model.logging.port == 6514
        assert model.rpa is not None
        assert model.rpa.target == 0.95
        assert model.vulnscan is not None
        assert model.vulnscan.min_index == 70
        assert [r.name for r in model.backup_repositories] == ["alterno", "boveda"]
        assert model.backup_maintenance is not None
        assert model.backup_maintenance.host == "bkp-a1"


def test_sections_left_out_take_their_defaults(lab_inventory: Path) -> None:
    for name in ("logging.yml", "rpa.yml", "vulnscan.yml", "dr_backup.yml"):
        (lab_inventory / "group_vars" / "all" / name).unlink()
    model = load_model(lab_inventory, routes=NO_ROUTES)
    assert model.logging.remote_dir == "/var/log/remote"
    assert model.logging.retention_days == 365
    assert (model.rpa, model.vulnscan, model.backup_maintenance) == (None, None, None)
    assert model.backup_repositories == ()


def test_too_few_repositories_for_a_policy(lab_inventory: Path) -> None:
    file = lab_inventory / "group_vars" / "all" / "dr_backup.yml"
    text = file.read_text()
    start, end = text.index("  - name: boveda"), text.index("gestic_backup_maintenance:")
    file.write_text(text[:start] + text[end:])
    problems = _problems(lab_inventory)
    line = _line_of(file, "gestic_backup_repositories:")
    assert problems == [
        f"{file}:{line}: gestic_backup_repositories: policy '{name}' keeps 2 copies but only 1 "
        "repositories are declared"
        for name in ("diario", "horario")
    ]


def test_repositories_need_their_maintenance_host(lab_inventory: Path) -> None:
    file = lab_inventory / "group_vars" / "all" / "dr_backup.yml"
    text = file.read_text()
    start = text.index("gestic_backup_maintenance:")
    end = text.index("# Repository passwords")
    file.write_text(text[:start] + text[end:])
    (problem,) = _problems(lab_inventory)
    assert "gestic_backup_maintenance: missing: gestic_backup_repositories needs" in problem


def test_a_maintenance_host_needs_repositories(lab_inventory: Path) -> None:
    file = lab_inventory / "group_vars" / "all" / "dr_backup.yml"
    text = file.read_text()
    start, end = text.index("gestic_backup_repositories:"), text.index("gestic_backup_maintenance:")
    file.write_text(text[:start] + text[end:])
    (problem,) = _problems(lab_inventory)
    line = _line_of(file, "gestic_backup_maintenance:")
    assert problem == (
        f"{file}:{line}: gestic_backup_maintenance: missing: gestic_backup_repositories, the "
        "repositories it maintains"
    )
    file.write_text(text[:start] + "gestic_backup_repositories: []\n" + text[end:])
    (problem,) = _problems(lab_inventory)
    assert problem.endswith(": gestic_backup_repositories: declare at least one repository")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("logging_retention_days: 90", "gestic_logging.retention_days"),
        ("rpa_scheduler_inventory: inventory/lab", "gestic_rpa.scheduler_inventory"),
        ("gestic_vulnscan_min_index: 70", "gestic_vulnscan.min_index"),
        ("gestic_rpa_bots: []", "gestic_rpa.bots"),
    ],
)
def test_an_old_setting_name_is_refused_with_its_new_name(
    lab_inventory: Path, old: str, new: str
) -> None:
    file = lab_inventory / "group_vars" / "all" / "old.yml"
    file.write_text(f"# the settings before the model had sections\n{old}\n")
    var = old.split(":", maxsplit=1)[0]
    (problem,) = _problems(lab_inventory)
    assert problem == f"{file}:2: {var}: '{var}' is now '{new}' (docs/environments.md)"


def test_missing_inventory_file(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path)
    assert problem == f"{tmp_path / 'hosts.yml'}: inventory file not found"


def test_machine_routes_agree_with_kernel_table() -> None:
    from_ip = set(machine_routes())
    assert set(_from_proc()) <= from_ip
