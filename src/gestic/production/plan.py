"""What the production stacks must hold, derived from the model alone (no Pulumi here).

Every model host becomes one VM whose labels say who owns it, which backup policy protects it,
the tier of the most critical service it runs, the services themselves, its site and the site's
role (primary or DR). The platform components turn these labels into vSphere tags or cloud tags;
the policy rules read them back from the declared resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from gestic.errors import ProductionPlanError
from gestic.model import Host, Model, Service

# Label keys: the vSphere tag categories are `gestic-<key>`, the cloud tags `gestic:<key>`.
OWNER = "owner"
BACKUP_POLICY = "backup-policy"
TIER = "tier"
SERVICES = "services"
SITE = "site"
SITE_ROLE = "site-role"
ENVIRONMENT = "environment"

#: Labels that hold one value; SERVICES may hold several.
SINGLE_LABELS = (OWNER, BACKUP_POLICY, TIER, SITE, SITE_ROLE, ENVIRONMENT)
LABELS = (*SINGLE_LABELS, SERVICES)


@dataclass(frozen=True, kw_only=True)
class VmSpec:
    """One production VM: size, place on the network and labels."""

    name: str
    site: str
    site_role: str
    address: str
    prefix_length: int
    gateway: str
    cpus: int
    memory_mb: int
    disk_gb: int
    labels: dict[str, tuple[str, ...]]

    @property
    def tier(self) -> int | None:
        values = self.labels.get(TIER, ())
        return int(values[0]) if values else None

    @property
    def services(self) -> tuple[str, ...]:
        return self.labels.get(SERVICES, ())

    @property
    def backup_policy(self) -> str | None:
        values = self.labels.get(BACKUP_POLICY, ())
        return values[0] if values else None


def _most_demanding(services: list[Service]) -> Service:
    """The service whose backups matter most: lowest RPO, then lowest tier, then name."""
    return min(services, key=lambda s: (s.rpo_minutes, s.tier, s.name))


def vm_spec(
    model: Model,
    host: Host,
    *,
    unserviced_backup_policy: str | None,
    backup_exclusions: frozenset[str] = frozenset(),
) -> VmSpec:
    """The VM for `host`.

    Its backup policy is that of its most demanding service; a host that runs no service
    (e.g. the backup repository) gets `unserviced_backup_policy`. Hosts named in
    `backup_exclusions` get no backup policy label at all (the policy pack rejects that).
    """
    site = model.sites[host.site]
    services = model.services_on(host.name)
    labels: dict[str, tuple[str, ...]] = {
        OWNER: (host.owner,),
        SITE: (site.name,),
        SITE_ROLE: (site.role,),
        ENVIRONMENT: (model.environment,),
    }
    if services:
        labels[SERVICES] = tuple(sorted(s.name for s in services))
        labels[TIER] = (str(min(s.tier for s in services)),)
        policy: str | None = _most_demanding(services).backup.policy
    else:
        policy = unserviced_backup_policy
    if policy is not None and host.name not in backup_exclusions:
        if policy not in model.backup_policies:
            raise ProductionPlanError(
                f"host '{host.name}': backup policy '{policy}' is not one of the model's "
                f"policies ({', '.join(sorted(model.backup_policies))})"
            )
        labels[BACKUP_POLICY] = (policy,)
    return VmSpec(
        name=host.name,
        site=site.name,
        site_role=site.role,
        address=str(host.address),
        prefix_length=site.network.prefixlen,
        gateway=str(site.gateway.ip),
        cpus=host.size.cpus,
        memory_mb=host.size.memory_mb,
        disk_gb=host.size.disk_gb,
        labels=labels,
    )


def plan(
    model: Model,
    *,
    unserviced_backup_policy: str | None,
    backup_exclusions: frozenset[str] = frozenset(),
) -> dict[str, VmSpec]:
    """Every model host as a VM, by host name."""
    unknown = sorted(backup_exclusions - set(model.hosts))
    if unknown:
        raise ProductionPlanError(
            f"backup exclusions name hosts the model does not have: {unknown}"
        )
    return {
        host.name: vm_spec(
            model,
            host,
            unserviced_backup_policy=unserviced_backup_policy,
            backup_exclusions=backup_exclusions,
        )
        for host in model.hosts.values()
    }


def label_values(specs: dict[str, VmSpec], key: str) -> list[str]:
    """Every value of one label across the VMs, sorted (the tags a platform must create)."""
    return sorted({v for spec in specs.values() for v in spec.labels.get(key, ())})
