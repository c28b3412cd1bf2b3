"""Load an inventory directory into a validated Model, reporting every problem with file and line.

The inventory is a plain Ansible YAML inventory (`hosts.yml`) with the model's settings in
`group_vars/all/*.yml` under `gestic_*` keys, so Ansible and gestic read the very same files.
The rules across sections are `gestic.model.checks`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from gestic.errors import ModelError, YamlSourceError
from gestic.model.checks import (
    check_accounts,
    check_backup_repositories,
    check_routes,
    cross_check_sections,
)
from gestic.model.rpa_schema import Rpa
from gestic.model.schema import (
    AccessGroup,
    Account,
    BackupMaintenance,
    BackupPolicy,
    BackupRepository,
    Connection,
    Host,
    Lab,
    Logging,
    Model,
    Monitoring,
    Service,
    Site,
    Vulnscan,
)
from gestic.model.yamlsrc import Key, Problems, SourceMap, load_yaml

T = TypeVar("T", bound=BaseModel)

HOSTS_FILE = "hosts.yml"
SETTINGS_DIR = Path("group_vars") / "all"


def _walk_groups(
    name: str, group: Any, key: Key, out: dict[str, dict[str, Any]], problems: Problems
) -> None:
    """Collect hosts (their vars and groups) from one Ansible inventory group, recursively."""
    if group is None:
        return
    if not isinstance(group, dict):
        problems.add(key, "a group must be a mapping with hosts/children/vars")
        return
    for unknown in set(group) - {"hosts", "children", "vars"}:
        problems.add((*key, unknown), "unknown group key (expected hosts, children or vars)")
    for host, hostvars in (group.get("hosts") or {}).items():
        entry = out.setdefault(str(host), {"vars": {}, "groups": [], "key": (*key, "hosts", host)})
        if hostvars is not None and not isinstance(hostvars, dict):
            problems.add((*key, "hosts", host), "host variables must be a mapping")
            continue
        entry["vars"].update(hostvars or {})
        if name != "all":
            entry["groups"].append(name)
        if hostvars and any(k.startswith("gestic_") for k in hostvars):
            entry["key"] = (*key, "hosts", host)
    for child, sub in (group.get("children") or {}).items():
        _walk_groups(str(child), sub, (*key, "children", child), out, problems)


def _read_sources(root: Path, smap: SourceMap) -> tuple[Any, dict[str, Any]]:
    hosts_file = root / HOSTS_FILE
    if not hosts_file.is_file():
        raise ModelError([f"{hosts_file}: inventory file not found"])
    settings: dict[str, Any] = {}
    errors: list[str] = []
    vaults: list[str] = []
    try:
        inventory = load_yaml(hosts_file, prefix=("inventory",), smap=smap)
    except YamlSourceError as exc:
        errors.append(str(exc))
        inventory = None
    errors.extend(_date_problems(inventory, smap, hosts_file, prefix=("inventory",)))
    for file in sorted((root / SETTINGS_DIR).glob("*.yml")):
        if is_vault_file(file):
            vaults.append(file.name)  # secrets: Ansible decrypts them, the model never reads them
            continue
        try:
            data = load_yaml(file, smap=smap) or {}
        except YamlSourceError as exc:
            errors.append(str(exc))
            continue
        if not isinstance(data, dict):
            errors.append(f"{file}:1: expected a mapping of variables")
            continue
        errors.extend(_date_problems(data, smap, file))
        for var, value in data.items():
            if var in settings:
                errors.append(f"{smap.locate((var,))}: '{var}' is defined in two files")
            settings[var] = value
    if errors:
        raise ModelError(errors)
    settings[VAULTS_KEY] = vaults
    return inventory, settings


VAULT_HEADER = "$ANSIBLE_VAULT;"
VAULTS_KEY = " vault files"  # internal: not a variable name Ansible could define


def is_vault_file(path: Path) -> bool:
    """Whether `path` is a whole file encrypted with ansible-vault."""
    with path.open("rb") as f:
        return f.read(len(VAULT_HEADER)) == VAULT_HEADER.encode()


YAML_DATE_HINT = (
    "an unquoted YAML date: quote it ('2027-06-30'); Ansible hands inventory values to modules "
    "as JSON, which has no date type"
)


def _date_problems(data: Any, smap: SourceMap, file: Path, *, prefix: Key = ()) -> list[str]:
    return [
        f"{smap.locate((*prefix, *key)) or file}: {'.'.join(map(str, key))}: {YAML_DATE_HINT}"
        for key in _yaml_dates(data)
    ]


def _yaml_dates(data: Any, key: Key = ()) -> Iterable[Key]:
    """Keys whose value YAML read as a date or timestamp (anywhere in `data`)."""
    if isinstance(data, date):
        yield key
    elif isinstance(data, dict):
        for name, value in data.items():
            yield from _yaml_dates(value, (*key, name))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _yaml_dates(value, (*key, i))


#: The `gestic_*` settings an inventory may define in group_vars/all (read by the model or by
#: the roles); any other `gestic_*` name is a typo that would otherwise be ignored silently.
KNOWN_SETTINGS = frozenset({
    "gestic_access_groups", "gestic_accounts", "gestic_backup_maintenance",
    "gestic_backup_passwords", "gestic_backup_policies", "gestic_backup_repositories",
    "gestic_connection", "gestic_lab", "gestic_logging", "gestic_monitoring", "gestic_rpa",
    "gestic_services", "gestic_sites", "gestic_vulnscan",
})  # fmt: skip
#: Settings that were renamed into a section: an inventory that still uses the old name is told
#: the new one (rather than the setting being ignored, silently, for its default).
RENAMED = {
    "logging_port": "gestic_logging.port",
    "logging_remote_dir": "gestic_logging.remote_dir",
    "logging_retention_days": "gestic_logging.retention_days",
    "logging_queue_max_disk": "gestic_logging.queue_max_disk",
    "logging_cert_days": "gestic_logging.cert_days",
    "logging_review": "gestic_logging.review",
    "gestic_rpa_target": "gestic_rpa.target",
    "gestic_rpa_at_risk_window_minutes": "gestic_rpa.at_risk_window_minutes",
    "gestic_rpa_timezone": "gestic_rpa.timezone",
    "gestic_rpa_bots": "gestic_rpa.bots",
    "rpa_scheduler_inventory": "gestic_rpa.scheduler_inventory",
    "gestic_vulnscan_min_index": "gestic_vulnscan.min_index",
}
#: The `gestic_*` variables a host may carry in hosts.yml.
KNOWN_HOST_VARS = frozenset({"gestic_address", "gestic_owner", "gestic_size"})


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f": did you mean '{close[0]}'?" if close else f" (known: {', '.join(sorted(known))})"


def _unknown_settings(
    settings: dict[str, Any], raw_hosts: dict[str, dict[str, Any]], problems: Problems
) -> None:
    for var in sorted(settings):
        if (new := RENAMED.get(str(var))) is not None:
            problems.add((var,), f"'{var}' is now '{new}' (docs/environments.md)")
        elif str(var).startswith("gestic_") and var not in KNOWN_SETTINGS:
            problems.add((var,), f"unknown setting '{var}'{_did_you_mean(var, KNOWN_SETTINGS)}")
    for host, entry in sorted(raw_hosts.items()):
        for var in sorted(entry["vars"]):
            if str(var).startswith("gestic_") and var not in KNOWN_HOST_VARS:
                problems.add(
                    (*entry["key"], var),
                    f"unknown host variable '{var}' of {host}{_did_you_mean(var, KNOWN_HOST_VARS)}",
                )


def _named(
    cls: type[T], raw: Any, key: Key, problems: Problems, *, field: str = "name"
) -> dict[str, T]:
    """Validate a mapping of name -> settings; the name goes into `field` of each item."""
    if not isinstance(raw, dict):
        problems.add(key, f"must be a mapping of {field} -> settings")
        return {}
    result: dict[str, T] = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            problems.add((*key, name), "must be a mapping")
            continue
        if field in body and body[field] != name:
            problems.add((*key, name, field), f"{field} {body[field]!r} differs from its key")
            continue
        item = problems.validate(cls, {**body, field: name}, (*key, name))
        if item is not None:
            result[str(name)] = item
    return result


def _section(cls: type[T], settings: dict[str, Any], var: str, problems: Problems) -> T | None:
    """The setting `var` (one mapping) as a `cls`; None when absent or invalid (reported)."""
    if var not in settings:
        return None
    return problems.validate(cls, settings[var], (var,))


def _listed(cls: type[T], settings: dict[str, Any], var: str, problems: Problems) -> dict[int, T]:
    """The setting `var` (a list) as `cls` items by position; the invalid ones are reported
    and left out (the others keep their position, so that later problems name the right line)."""
    raw = settings.get(var, [])
    if not isinstance(raw, list):
        problems.add((var,), "must be a list")
        return {}
    items = {i: problems.validate(cls, entry, (var, i)) for i, entry in enumerate(raw)}
    return {i: item for i, item in items.items() if item is not None}


def _hosts(
    raw_hosts: dict[str, dict[str, Any]], sites: dict[str, Site], problems: Problems
) -> dict[str, Host]:
    hosts: dict[str, Host] = {}
    for name, entry in raw_hosts.items():
        key: Key = entry["key"]
        in_sites = [g for g in entry["groups"] if g in sites]
        if len(in_sites) != 1:
            where = ", ".join(in_sites) or "none"
            problems.add(key, f"host must belong to exactly one site group (found: {where})")
            continue
        hv = entry["vars"]
        data = {
            "name": name,
            "site": in_sites[0],
            "address": hv.get("gestic_address"),
            "owner": hv.get("gestic_owner"),
            "groups": sorted(set(entry["groups"])),
            **({"size": hv["gestic_size"]} if "gestic_size" in hv else {}),
            **({"ssh_host": hv["ansible_host"]} if "ansible_host" in hv else {}),
            **({"ssh_port": hv["ansible_port"]} if "ansible_port" in hv else {}),
        }
        for field in ("address", "owner"):
            if data[field] is None:
                problems.add(key, f"missing required variable gestic_{field}")
        if any(data[f] is None for f in ("address", "owner")):
            continue
        if (host := problems.validate(Host, data, key)) is not None:
            hosts[name] = host
    return hosts


def _connection(root: Path, settings: dict[str, Any], problems: Problems) -> Connection | None:
    """`gestic_connection`, with every file it names checked before anything runs."""
    if "gestic_connection" not in settings:
        return None
    raw = settings["gestic_connection"]
    if isinstance(raw, dict) and "user" not in raw and "ansible_user" in settings:
        raw = {**raw, "user": settings["ansible_user"]}
    conn = problems.validate(Connection, raw, ("gestic_connection",))
    if conn is None:
        return None
    files: list[tuple[Key, str | None]] = [
        (("gestic_connection", "identity_file"), conn.identity_file),
        (("gestic_connection", "known_hosts"), conn.known_hosts),
        (("gestic_connection", "ssh_config"), conn.ssh_config),
        (("gestic_connection", "bastion", "identity_file"),
         conn.bastion.identity_file if conn.bastion else None),
    ]  # fmt: skip
    for key, value in files:
        if value is None:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            problems.add(key, f"file not found: {path}")
    return conn


def load_model(
    root: Path,
    *,
    routes: Iterable[IPv4Network] | None = None,
    check_machine: bool = True,
    today: date | None = None,
) -> Model:
    """Read and validate the inventory in `root`; raise ModelError listing every problem.

    With `check_machine`, the lab range is also checked against this machine's routes
    (`routes` overrides them, for tests). Dates (account expiry and removal) are judged
    against `today` (default: the machine's date); what does not stop anything (an expired
    account) lands in `Model.warnings`.
    """
    root = root.resolve()
    smap = SourceMap()
    inventory, settings = _read_sources(root, smap)
    problems = Problems(smap, root / HOSTS_FILE)
    raw_hosts: dict[str, dict[str, Any]] = {}
    if not isinstance(inventory, dict) or "all" not in inventory:
        problems.add(("inventory",), "inventory must have a top-level 'all' group")
    else:
        _walk_groups("all", inventory["all"], ("inventory", "all"), raw_hosts, problems)
    _unknown_settings(settings, raw_hosts, problems)
    for required in ("gestic_sites", "gestic_services", "gestic_backup_policies"):
        if required not in settings:
            problems.add((required,), f"missing '{required}' in {root / SETTINGS_DIR}/*.yml")
    sites = _named(Site, settings.get("gestic_sites", {}), ("gestic_sites",), problems)
    policies = _named(
        BackupPolicy,
        settings.get("gestic_backup_policies", {}),
        ("gestic_backup_policies",),
        problems,
    )
    services = _named(Service, settings.get("gestic_services", {}), ("gestic_services",), problems)
    lab = _section(Lab, settings, "gestic_lab", problems)
    connection = _connection(root, settings, problems)
    monitoring = _section(Monitoring, settings, "gestic_monitoring", problems)
    logging = _section(Logging, settings, "gestic_logging", problems) or Logging()
    rpa = _section(Rpa, settings, "gestic_rpa", problems)
    vulnscan = _section(Vulnscan, settings, "gestic_vulnscan", problems)
    repositories = _listed(BackupRepository, settings, "gestic_backup_repositories", problems)
    maintenance = _section(BackupMaintenance, settings, "gestic_backup_maintenance", problems)
    if lab is None and connection is None:
        problems.add(
            ("gestic_connection",),
            f"missing 'gestic_connection' in {root / SETTINGS_DIR}/*.yml: an environment that "
            "is not a lab (no gestic_lab) must say how its hosts are reached",
        )
    hosts = _hosts(raw_hosts, sites, problems)
    access_groups = _named(
        AccessGroup, settings.get("gestic_access_groups", {}), ("gestic_access_groups",), problems
    )
    accounts = _named(
        Account, settings.get("gestic_accounts", {}), ("gestic_accounts",), problems,
        field="username",
    )  # fmt: skip
    model = Model(
        environment=root.name,
        sites=sites,
        hosts=hosts,
        services=services,
        backup_policies=policies,
        lab=lab,
        connection=connection,
        monitoring=monitoring,
        logging=logging,
        rpa=rpa,
        vulnscan=vulnscan,
        backup_repositories=tuple(repositories.values()),
        backup_maintenance=maintenance,
        vault_files=tuple(settings[VAULTS_KEY]),
        accounts=accounts,
        access_groups=access_groups,
    )
    host_keys = {n: e["key"] for n, e in raw_hosts.items()}
    cross_check_sections(model, problems, host_keys)
    check_backup_repositories(model, settings, repositories, host_keys, problems)
    warnings = Problems(smap, root / HOSTS_FILE)
    check_accounts(
        model=model,
        raw_hosts=raw_hosts,
        settings=settings,
        problems=problems,
        warnings=warnings,
        today=today or date.today(),
    )
    if check_machine:  # with the other problems: every problem is reported in one run
        origin = smap.locate(("gestic_lab", "range"))
        problems.items.extend(f"{origin}: {p}" for p in check_routes(model, routes))
    if problems.items:
        raise ModelError(problems.items)
    if warnings.items:
        model = model.model_copy(update={"warnings": tuple(warnings.items)})
    return model
