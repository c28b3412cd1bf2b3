"""The model's rules across sections, checked once every section has loaded: addresses within
sites, references that resolve, networks apart, backup repositories, accounts, and the lab
range against this machine's routes. `gestic.model.loader` reports their problems with the
others, with file and line.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from datetime import date
from ipaddress import IPv4Network
from typing import Any

from gestic.model.routes import machine_routes, overlaps
from gestic.model.schema import BackupRepository, Model
from gestic.model.yamlsrc import Key, Problems

AUTOMATION_ACCOUNT = "gestic"  # Ansible's account (ansible_user): never declared as a person
RESERVED_ACCOUNTS = frozenset({"root", "nobody"})


def cross_check_sections(model: Model, problems: Problems, keys: dict[str, Key]) -> None:
    """Rules across sections: addresses within sites, references resolve, networks apart."""
    sites, hosts = model.sites, model.hosts
    seen: dict[Any, str] = {}
    for host in hosts.values():
        key = keys[host.name]
        site = sites[host.site]
        if host.address not in site.network:
            problems.add(
                (*key, "gestic_address"),
                f"address {host.address} is outside site '{site.name}' network {site.network}",
            )
        elif host.address in (site.network.network_address, site.network.broadcast_address):
            problems.add((*key, "gestic_address"), f"address {host.address} is not a host address")
        elif host.address == site.gateway.ip:
            problems.add((*key, "gestic_address"), f"address {host.address} is the site gateway")
        if (other := seen.get(host.address)) is not None:
            problems.add(
                (*key, "gestic_address"), f"address {host.address} is also used by host '{other}'"
            )
        seen[host.address] = host.name
    for svc in model.services.values():
        for field in ("hosts", "dr_hosts"):
            for i, ref in enumerate(getattr(svc, field)):
                if ref not in keys:  # declared, even if invalid (reported on its own)
                    problems.add(("gestic_services", svc.name, field, i), f"unknown host '{ref}'")
        if svc.backup.policy not in model.backup_policies:
            problems.add(
                ("gestic_services", svc.name, "backup", "policy"),
                f"unknown backup policy '{svc.backup.policy}'",
            )
    sites_list = list(sites.values())
    for i, a in enumerate(sites_list):
        for b in sites_list[i + 1 :]:
            if a.network.overlaps(b.network):
                problems.add(
                    ("gestic_sites", b.name, "network"),
                    f"network {b.network} overlaps site '{a.name}' ({a.network})",
                )
    lab = model.lab
    if lab is not None:
        for site in sites_list:
            if not site.network.subnet_of(lab.range):
                problems.add(
                    ("gestic_sites", site.name, "network"),
                    f"network {site.network} is outside the lab range {lab.range}",
                )
    _check_monitoring(model, keys, problems)
    _check_rpa(model, problems)
    _check_rpa_ledger(model, problems)


def _check_rpa_ledger(model: Model, problems: Problems) -> None:
    """The shared RPA ledger names a PostgreSQL service of the model whose first host is a
    database host (group `db`: the database role creates it there), in a database of its own
    that the service's backups hold (so its DR hosts recover the queue with the portfolio)."""
    ledger = model.rpa.ledger if model.rpa is not None else None
    if ledger is None:
        return
    at: Key = ("gestic_rpa", "ledger")
    service = model.services.get(ledger.service)
    if service is None:
        problems.add(
            (*at, "service"),
            f"unknown service '{ledger.service}' (services: {', '.join(sorted(model.services))})",
        )
        return
    probe = service.probe
    if probe is None or probe.kind != "postgresql":
        problems.add(
            (*at, "service"),
            f"service '{service.name}' is not a PostgreSQL service (its probe must be "
            "`kind: postgresql`, which also gives the port)",
        )
    elif probe.database == ledger.database:
        problems.add(
            (*at, "database"),
            f"'{ledger.database}' is the service's own database: the ledger needs one of its own",
        )
    if ledger.database not in service.backup.databases:
        problems.add(
            ("gestic_services", service.name, "backup", "databases"),
            f"the shared RPA ledger's database '{ledger.database}' (gestic_rpa.ledger) lives on "
            f"'{service.name}' but is not backed up with it: add it to backup.databases "
            f"(now {list(service.backup.databases)}), so the DR site recovers the queue too",
        )
    host = model.hosts.get(service.hosts[0])
    if host is not None and "db" not in host.groups:
        problems.add(
            (*at, "service"),
            f"service '{service.name}' runs on '{host.name}', which is not in group `db` "
            "(the database role creates the ledger's database on the db hosts)",
        )


def _check_monitoring(model: Model, keys: dict[str, Key], problems: Problems) -> None:
    """The monitoring's servers are hosts, every service has a probe and every tier a target."""
    mon = model.monitoring
    if mon is None:
        return
    for i, ref in enumerate(mon.servers):
        if ref not in keys:
            problems.add(("gestic_monitoring", "servers", i), f"unknown host '{ref}'")
    for svc in model.services.values():
        if svc.probe is None:
            problems.add(
                ("gestic_services", svc.name),
                "no `probe`: the monitoring (gestic_monitoring) measures every service, say how "
                "(kind: http|postgresql|ssh|tcp, port)",
            )
        if svc.tier not in mon.targets:
            problems.add(
                ("gestic_monitoring", "targets"),
                f"no availability target for tier {svc.tier} (service '{svc.name}')",
            )
    for i, window in enumerate(mon.maintenance_windows):
        for j, ref in enumerate(window.services):
            if ref not in model.services:
                problems.add(
                    ("gestic_monitoring", "maintenance_windows", i, "services", j),
                    f"unknown service '{ref}'",
                )


def _check_rpa(model: Model, problems: Problems) -> None:
    """The intake's transfer service runs somewhere; variables name only known services."""
    rpa = model.rpa
    if rpa is None:
        return
    intake = rpa.intake
    service = model.services.get(intake.service)
    if intake.inboxes and (service is None or not service.hosts):
        problems.add(
            ("gestic_rpa", "intake", "service"),
            f"unknown service '{intake.service}' (the transfer service whose host holds the "
            "partners' SFTP accounts)"
            if service is None
            else f"service '{intake.service}' runs on no host",
        )
    for bot, values in rpa.variables.items():
        for var, value in values.items():
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
            except ValueError as exc:
                problems.add(("gestic_rpa", "variables", bot, var), f"{value!r}: {exc}")
                continue
            for ref in fields:
                if ref not in model.services:
                    problems.add(
                        ("gestic_rpa", "variables", bot, var),
                        f"unknown service '{{{ref}}}' (a placeholder names a service: "
                        f"{', '.join(sorted(model.services))})",
                    )


def check_backup_repositories(
    model: Model,
    settings: dict[str, Any],
    repositories: dict[int, BackupRepository],
    keys: dict[str, Key],
    problems: Problems,
) -> None:
    """The repositories and their maintenance are on declared hosts, enough for every policy."""
    var = "gestic_backup_repositories"
    if var not in settings and "gestic_backup_maintenance" not in settings:
        return  # no backup repositories in this environment
    raw = settings.get(var)
    repos, maintenance = model.backup_repositories, model.backup_maintenance
    if var not in settings:
        problems.add(
            ("gestic_backup_maintenance",), f"missing: {var}, the repositories it maintains"
        )
    elif not raw:
        problems.add((var,), "declare at least one repository")
    names: set[str] = set()
    for i, repo in repositories.items():
        if repo.host not in keys:
            problems.add((var, i, "host"), f"unknown host '{repo.host}'")
        if repo.name in names:
            problems.add((var, i, "name"), f"repository '{repo.name}' is declared twice")
        names.add(repo.name)
    count = len(raw) if isinstance(raw, list) else len(repos)
    for name, policy in model.backup_policies.items():
        if count and policy.copies > count:
            problems.add(
                (var,),
                f"policy '{name}' keeps {policy.copies} copies but only {count} "
                "repositories are declared",
            )
    if "gestic_backup_maintenance" not in settings:
        problems.add(
            ("gestic_backup_maintenance",),
            f"missing: {var} needs the host that maintains them (gestic_backup_maintenance.host)",
        )
    elif maintenance is not None and maintenance.host not in keys:
        problems.add(("gestic_backup_maintenance", "host"), f"unknown host '{maintenance.host}'")


def check_accounts(
    *,
    model: Model,
    raw_hosts: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    problems: Problems,
    warnings: Problems,
    today: date,
) -> None:
    """Accounts: references resolve, uids and keys are personal, dates make sense."""
    targets = {"all", *raw_hosts}
    for entry in raw_hosts.values():
        targets.update(entry["groups"])
    automation = str(settings.get("ansible_user", AUTOMATION_ACCOUNT))
    uids: dict[int, str] = {}
    keys: dict[str, str] = {}
    for acct in model.accounts.values():
        at: Key = ("gestic_accounts", acct.username)
        if acct.username in RESERVED_ACCOUNTS | {automation}:
            why = "the automation account" if acct.username == automation else "a system account"
            problems.add(at, f"'{acct.username}' is {why}: it is never declared as a person")
        if acct.username in model.access_groups:
            problems.add(at, f"'{acct.username}' is also the name of an access group")
        for i, ref in enumerate(acct.hosts):
            if ref not in targets:
                problems.add((*at, "hosts", i), f"unknown host or host group '{ref}'")
        for i, group in enumerate(acct.groups):
            if group not in model.access_groups:
                problems.add(
                    (*at, "groups", i),
                    f"unknown group '{group}' (declare it in gestic_access_groups)",
                )
        if acct.uid is not None:
            if (other := uids.get(acct.uid)) is not None:
                problems.add((*at, "uid"), f"uid {acct.uid} is also used by account '{other}'")
            uids.setdefault(acct.uid, acct.username)
        for i, fingerprint in enumerate(acct.fingerprints):
            if (owner := keys.get(fingerprint)) is not None:
                whose = "twice" if owner == acct.username else f"also for account '{owner}'"
                problems.add((*at, "keys", i), f"key {fingerprint} is declared {whose}")
            keys.setdefault(fingerprint, acct.username)
        if acct.removed_on is not None and acct.removed_on > today:
            problems.add(
                (*at, "removed_on"),
                f"removal date {acct.removed_on} is in the future: keep the account present "
                f"with expires: {acct.removed_on} until then",
            )
        if acct.state == "present" and acct.expires is not None and acct.expires <= today:
            warnings.add(
                (*at, "expires"),
                f"account expired on {acct.expires}: renew it (expires) or remove it "
                "(state: removed)",
            )


def check_routes(model: Model, routes: Iterable[IPv4Network] | None = None) -> list[str]:
    """Problems where the lab range overlaps a route of this machine (root namespace)."""
    if model.lab is None:
        return []
    clashes = overlaps(model.lab.range, list(machine_routes() if routes is None else routes))
    return [
        f"gestic_lab.range: {model.lab.range} overlaps this machine's route {r}; "
        "choose a range no route of the machine uses"
        for r in clashes
    ]
