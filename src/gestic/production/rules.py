"""The production policy rules, as plain functions over declared resources.

The same functions run in two places: `gestic policy check` applies them to the resources the
production program declares under Pulumi mocks, and the policy pack in `policy/` wires them as
Pulumi policies for `pulumi preview --policy-pack policy/` in the institution's CI.

A rule sees each resource as a `ResourceView`: its Pulumi type, logical name, input properties
(camelCase, as the engine sends them) and its gestic labels. Cloud tags carry the labels
directly (`gestic:<label>`); a vSphere VM refers to tags by id, so whoever builds the view
resolves them to (category, tag) names first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any, Literal

from gestic.production.sizing import instance_type

VSPHERE_VM = "vsphere:index/virtualMachine:VirtualMachine"
VSPHERE_TAG = "vsphere:index/tag:Tag"
VSPHERE_CATEGORY = "vsphere:index/tagCategory:TagCategory"
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_VOLUME = "aws:ebs/volume:Volume"
AWS_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VM_TYPES = frozenset({VSPHERE_VM, AWS_INSTANCE})

CATEGORY_PREFIX = "gestic-"
CLOUD_TAG_PREFIX = "gestic:"

#: Ports that administer a host; none may be open to any address.
MANAGEMENT_PORTS = {22: "SSH", 23: "Telnet", 3389: "RDP", 5900: "VNC", 5985: "WinRM", 5986: "WinRM"}
#: Sizing guidance (advisory): memory per vCPU, and the largest single disk.
MEMORY_PER_CPU_MB = (1024, 16384)
MAX_DISK_GB = 2048

Enforcement = Literal["mandatory", "advisory"]


@dataclass(frozen=True, kw_only=True)
class ResourceView:
    """One declared resource as the rules see it."""

    type: str
    name: str
    props: Mapping[str, Any]
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_vm(self) -> bool:
        return self.type in VM_TYPES

    def label(self, key: str) -> str | None:
        values = self.labels.get(key, ())
        return values[0] if values else None


@dataclass(frozen=True, kw_only=True)
class Violation:
    policy: str
    enforcement: Enforcement
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.enforcement}] {self.policy}: {self.message}"


ResourceCheck = Callable[[ResourceView], Iterable[str]]
StackCheck = Callable[[Sequence[ResourceView]], Iterable[tuple[str, str]]]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A policy: a check of one resource at a time, or of the whole stack at once."""

    name: str
    description: str
    enforcement: Enforcement
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    #: whether the check reads labels (then the pack must resolve vSphere tags first)
    uses_labels: bool = False

    def apply(self, views: Sequence[ResourceView]) -> list[Violation]:
        found: list[tuple[str, str]] = []
        if self.resource_check is not None:
            check = self.resource_check
            found += [(v.name, msg) for v in views for msg in check(v)]
        if self.stack_check is not None:
            found += list(self.stack_check(views))
        return [
            Violation(policy=self.name, enforcement=self.enforcement, resource=r, message=m)
            for r, m in found
        ]


# ---- labels ------------------------------------------------------------------------------


def labels_from_cloud_tags(tags: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """`gestic:<label>` tags as labels (several values are separated by spaces)."""
    labels: dict[str, tuple[str, ...]] = {}
    for key, value in (tags or {}).items():
        if isinstance(key, str) and key.startswith(CLOUD_TAG_PREFIX) and isinstance(value, str):
            labels[key.removeprefix(CLOUD_TAG_PREFIX)] = tuple(value.split())
    return labels


def labels_from_vsphere_tags(tags: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """(category name, tag name) pairs of a VM as labels; categories not gestic's are ignored."""
    labels: dict[str, list[str]] = {}
    for category, tag in tags:
        if category.startswith(CATEGORY_PREFIX):
            labels.setdefault(category.removeprefix(CATEGORY_PREFIX), []).append(tag)
    return {k: tuple(sorted(v)) for k, v in labels.items()}


# ---- mandatory rules ---------------------------------------------------------------------


def _what(view: ResourceView) -> str:
    tier = view.label("tier")
    site = view.label("site")
    kind = f"tier-{tier} VM" if tier else "VM"
    return f"{kind} '{view.name}'" + (f" (site {site})" if site else "")


def check_backup_and_owner(view: ResourceView) -> Iterable[str]:
    """Every VM carries a backup policy tag and an owner tag."""
    if not view.is_vm:
        return
    if not view.label("backup-policy"):
        yield (
            f"{_what(view)} carries no backup policy tag (gestic-backup-policy): every VM must "
            "be protected by one of the model's backup policies (Procedimiento Gestión de "
            "Backups)"
        )
    if not view.label("owner"):
        yield (
            f"{_what(view)} carries no owner tag (gestic-owner): every VM must name the group "
            "responsible for it"
        )


def check_tier1_dr_counterpart(views: Sequence[ResourceView]) -> Iterable[tuple[str, str]]:
    """Every service of a tier-1 VM at a primary site also runs on a VM at a DR site."""
    at_dr = {
        s
        for v in views
        if v.is_vm and v.label("site-role") == "dr"
        for s in v.labels.get("services", ())
    }
    for view in views:
        if not view.is_vm or view.label("site-role") != "primary" or view.label("tier") != "1":
            continue
        for service in view.labels.get("services", ()):
            if service not in at_dr:
                yield (
                    view.name,
                    f"tier-1 service '{service}' runs on {_what(view)} but no VM at a DR site "
                    "carries it: give the service dr_hosts in the model (Plan de Recuperación "
                    "de Desastres)",
                )


def _any_address(cidrs: Iterable[Any]) -> list[str]:
    found = []
    for cidr in cidrs:
        try:
            if ip_network(str(cidr), strict=False).prefixlen == 0:
                found.append(str(cidr))
        except ValueError:
            continue
    return found


def _ports(protocol: Any, from_port: Any, to_port: Any) -> list[int]:
    proto = str(protocol).lower()
    if proto in {"-1", "all"}:
        return sorted(MANAGEMENT_PORTS)
    if proto not in {"tcp", "6"}:
        return []
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        return []
    return [p for p in sorted(MANAGEMENT_PORTS) if low <= p <= high]


def _ingress_rules(view: ResourceView) -> list[dict[str, Any]]:
    p = view.props
    if view.type == AWS_SECURITY_GROUP:
        return [r for r in p.get("ingress") or [] if isinstance(r, dict)]
    if view.type == AWS_SG_RULE and p.get("type") == "ingress":
        return [dict(p)]
    if view.type == AWS_SG_INGRESS:
        return [
            {
                "protocol": p.get("ipProtocol"),
                "fromPort": p.get("fromPort"),
                "toPort": p.get("toPort"),
                "cidrBlocks": [p.get("cidrIpv4")] if p.get("cidrIpv4") else [],
                "ipv6CidrBlocks": [p.get("cidrIpv6")] if p.get("cidrIpv6") else [],
            }
        ]
    return []


def check_management_ports(view: ResourceView) -> Iterable[str]:
    """No firewall rule admits a management port (SSH, RDP, ...) from any address."""
    for rule in _ingress_rules(view):
        cidrs = [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
        anywhere = _any_address(cidrs)
        ports = _ports(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"))
        if anywhere and ports:
            names = ", ".join(f"{p} ({MANAGEMENT_PORTS[p]})" for p in ports)
            yield (
                f"'{view.name}' opens management port {names} to any address "
                f"({', '.join(anywhere)}): admit the management networks only"
            )


def check_disk_encryption(view: ResourceView) -> Iterable[str]:
    """Disks are encrypted: a vSphere VM and each of its disks carry the encryption storage
    policy; EBS volumes (root, attached, standalone) are encrypted."""
    p = view.props
    if view.type == VSPHERE_VM:
        if not p.get("storagePolicyId"):
            yield f"VM '{view.name}' has no storage policy: place it with the VM encryption policy"
        for i, disk in enumerate(p.get("disks") or []):
            if isinstance(disk, dict) and not disk.get("storagePolicyId"):
                label = disk.get("label") or f"#{i}"
                yield (
                    f"disk {label} of VM '{view.name}' has no storage policy: "
                    "it would not be encrypted"
                )
    elif view.type == AWS_INSTANCE:
        root = p.get("rootBlockDevice") or {}
        if root.get("encrypted") is not True:
            yield f"root volume of instance '{view.name}' is not encrypted"
        for disk in p.get("ebsBlockDevices") or []:
            if isinstance(disk, dict) and disk.get("encrypted") is not True:
                yield (
                    f"volume {disk.get('deviceName', '?')} of instance '{view.name}' "
                    "is not encrypted"
                )
    elif view.type == AWS_VOLUME and p.get("encrypted") is not True:
        yield f"EBS volume '{view.name}' is not encrypted"


# ---- advisory rules (sizing) -------------------------------------------------------------


def vm_size(view: ResourceView) -> tuple[int, int] | None:
    """(CPUs, memory MB) of a VM, if its declaration says."""
    p = view.props
    if view.type == VSPHERE_VM and p.get("numCpus") and p.get("memory"):
        return int(p["numCpus"]), int(p["memory"])
    if view.type == AWS_INSTANCE and (t := instance_type(str(p.get("instanceType")))):
        return t.cpus, t.memory_mb
    return None


def check_memory_per_cpu(view: ResourceView) -> Iterable[str]:
    """Memory per vCPU stays within the usual range (too little swaps, too much wastes hosts)."""
    if (size := vm_size(view)) is None:
        return
    cpus, memory = size
    low, high = MEMORY_PER_CPU_MB
    per_cpu = memory / cpus
    if not low <= per_cpu <= high:
        yield (
            f"VM '{view.name}' has {memory} MB for {cpus} vCPUs ({per_cpu:.0f} MB per vCPU); "
            f"the usual range is {low}-{high} MB"
        )


def _disk_sizes(view: ResourceView) -> list[int]:
    p = view.props
    if view.type == VSPHERE_VM:
        return [int(d.get("size") or 0) for d in p.get("disks") or [] if isinstance(d, dict)]
    if view.type == AWS_INSTANCE:
        disks = [p.get("rootBlockDevice") or {}, *(p.get("ebsBlockDevices") or [])]
        return [int(d.get("volumeSize") or 0) for d in disks if isinstance(d, dict)]
    return []


def check_disk_size(view: ResourceView) -> Iterable[str]:
    """No single disk is larger than MAX_DISK_GB (restores and snapshots grow with it)."""
    for size in _disk_sizes(view):
        if size > MAX_DISK_GB:
            yield (
                f"VM '{view.name}' has a {size} GB disk (over {MAX_DISK_GB} GB): split data "
                "over several disks so restores and snapshots stay short"
            )


def check_dr_capacity(views: Sequence[ResourceView]) -> Iterable[tuple[str, str]]:
    """A DR VM of a tier-1 service is at least as big as the service's largest primary VM."""
    primary: dict[str, tuple[int, int]] = {}
    for v in views:
        if v.is_vm and v.label("site-role") == "primary" and (size := vm_size(v)):
            for s in v.labels.get("services", ()):
                old = primary.get(s, (0, 0))
                primary[s] = (max(old[0], size[0]), max(old[1], size[1]))
    for v in views:
        if not v.is_vm or v.label("site-role") != "dr" or v.label("tier") != "1":
            continue
        if (size := vm_size(v)) is None:
            continue
        for s in v.labels.get("services", ()):
            want = primary.get(s)
            if want and (size[0] < want[0] or size[1] < want[1]):
                yield (
                    v.name,
                    f"DR VM '{v.name}' ({size[0]} vCPU, {size[1]} MB) is smaller than the "
                    f"primary VMs of '{s}' ({want[0]} vCPU, {want[1]} MB): the RTO assumes the "
                    "DR site carries the full load",
                )


RULES: tuple[Rule, ...] = (
    Rule(
        name="vm-backup-and-owner-tags",
        description="Every VM carries a backup policy tag and an owner tag.",
        enforcement="mandatory",
        resource_check=check_backup_and_owner,
        uses_labels=True,
    ),
    Rule(
        name="tier1-dr-counterpart",
        description="Every tier-1 service has a VM at a DR site.",
        enforcement="mandatory",
        stack_check=check_tier1_dr_counterpart,
        uses_labels=True,
    ),
    Rule(
        name="no-open-management-port",
        description="No management port (SSH, RDP, WinRM, VNC, Telnet) is open to any address.",
        enforcement="mandatory",
        resource_check=check_management_ports,
    ),
    Rule(
        name="disks-encrypted",
        description="VM disks are encrypted (vSphere encryption storage policy, encrypted EBS).",
        enforcement="mandatory",
        resource_check=check_disk_encryption,
    ),
    Rule(
        name="vm-memory-per-cpu",
        description="Memory per vCPU stays between 1 and 16 GB.",
        enforcement="advisory",
        resource_check=check_memory_per_cpu,
    ),
    Rule(
        name="vm-disk-size",
        description=f"No single VM disk is larger than {MAX_DISK_GB} GB.",
        enforcement="advisory",
        resource_check=check_disk_size,
    ),
    Rule(
        name="dr-capacity",
        description="DR VMs of tier-1 services are as big as the service's primary VMs.",
        enforcement="advisory",
        stack_check=check_dr_capacity,
        uses_labels=True,
    ),
)


def evaluate(views: Sequence[ResourceView], rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Every violation of every rule, mandatory ones first."""
    found = [v for rule in rules for v in rule.apply(views)]
    return sorted(found, key=lambda v: (v.enforcement != "mandatory", v.policy, v.resource))
