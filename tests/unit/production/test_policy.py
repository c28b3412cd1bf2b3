"""The policy rules on their own (a passing and a violating resource each), on the mocked
production stack, through `gestic policy check`, and wired as Pulumi policies."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from gestic.model import load_model
from gestic.procedures.change.policy import check, declare, views
from gestic.production.config import load_stack_file
from gestic.production.pack import policies
from gestic.production.rules import (
    AWS_INSTANCE,
    AWS_SECURITY_GROUP,
    AWS_SG_INGRESS,
    AWS_VOLUME,
    VSPHERE_CATEGORY,
    VSPHERE_TAG,
    VSPHERE_VM,
    ResourceView,
    check_backup_and_owner,
    check_disk_encryption,
    check_disk_size,
    check_dr_capacity,
    check_management_ports,
    check_memory_per_cpu,
    check_tier1_dr_counterpart,
    evaluate,
    labels_from_cloud_tags,
)

from ...paths import ROOT

PROD = ROOT / "inventory" / "production"
STACK_FILE = ROOT / "stacks" / "production" / "Pulumi.production.yaml"

LABELS = {
    "owner": ("infraestructura",),
    "backup-policy": ("horario",),
    "tier": ("1",),
    "services": ("portal",),
    "site": ("principal",),
    "site-role": ("primary",),
}


def vm(name: str = "web-p1", **labels: tuple[str, ...]) -> ResourceView:
    props = {
        "numCpus": 4,
        "memory": 8192,
        "storagePolicyId": "policy-1",
        "disks": [{"label": "disk0", "size": 80, "storagePolicyId": "policy-1"}],
    }
    merged = {**LABELS, **{k.replace("_", "-"): v for k, v in labels.items()}}
    return ResourceView(
        type=VSPHERE_VM, name=name, props=props, labels={k: v for k, v in merged.items() if v}
    )


def sg(*rules: dict[str, Any]) -> ResourceView:
    return ResourceView(type=AWS_SECURITY_GROUP, name="mgmt", props={"ingress": list(rules)})


def test_backup_and_owner_tags() -> None:
    assert list(check_backup_and_owner(vm())) == []
    (msg,) = check_backup_and_owner(vm(backup_policy=()))
    assert msg.startswith("tier-1 VM 'web-p1' (site principal) carries no backup policy tag")
    (msg,) = check_backup_and_owner(vm(owner=()))
    assert "carries no owner tag (gestic-owner)" in msg
    not_a_vm = ResourceView(type=AWS_VOLUME, name="v", props={})
    assert list(check_backup_and_owner(not_a_vm)) == []


def test_cloud_tags_become_labels() -> None:
    labels = labels_from_cloud_tags({"Name": "x", "gestic:services": "a b", "gestic:owner": "o"})
    assert labels == {"services": ("a", "b"), "owner": ("o",)}


def test_tier1_dr_counterpart() -> None:
    dr = vm("web-a1", site=("alterno",), site_role=("dr",))
    assert list(check_tier1_dr_counterpart([vm(), dr])) == []
    ((resource, msg),) = check_tier1_dr_counterpart([vm()])
    assert resource == "web-p1"
    assert "tier-1 service 'portal' runs on tier-1 VM 'web-p1'" in msg
    assert "no VM at a DR site carries it" in msg
    tier2 = vm(tier=("2",))
    assert list(check_tier1_dr_counterpart([tier2])) == []


def test_management_ports() -> None:
    ssh_from_mgmt = {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/27"]}
    web_from_any = {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}
    assert list(check_management_ports(sg(ssh_from_mgmt, web_from_any))) == []
    ssh_from_any = {**ssh_from_mgmt, "cidrBlocks": ["0.0.0.0/0"]}
    (msg,) = check_management_ports(sg(ssh_from_any))
    assert msg == (
        "'mgmt' opens management port 22 (SSH) to any address (0.0.0.0/0): "
        "admit the management networks only"
    )
    everything_v6 = {"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}
    (msg,) = check_management_ports(sg(everything_v6))
    assert "3389 (RDP)" in msg
    rdp_rule = ResourceView(
        type=AWS_SG_INGRESS,
        name="rdp",
        props={"ipProtocol": "tcp", "fromPort": 3000, "toPort": 4000, "cidrIpv4": "0.0.0.0/0"},
    )
    assert len(list(check_management_ports(rdp_rule))) == 1


def test_disk_encryption() -> None:
    assert list(check_disk_encryption(vm())) == []
    bare = replace(vm(), props={**vm().props, "disks": [{"label": "disk0", "size": 80}]})
    (msg,) = check_disk_encryption(bare)
    assert msg == "disk disk0 of VM 'web-p1' has no storage policy: it would not be encrypted"
    instance = ResourceView(
        type=AWS_INSTANCE, name="db-a1", props={"rootBlockDevice": {"encrypted": True}}
    )
    assert list(check_disk_encryption(instance)) == []
    plain = replace(instance, props={"rootBlockDevice": {"encrypted": False}})
    assert list(check_disk_encryption(plain)) == [
        "root volume of instance 'db-a1' is not encrypted"
    ]
    volume = ResourceView(type=AWS_VOLUME, name="data", props={"encrypted": False})
    assert list(check_disk_encryption(volume)) == ["EBS volume 'data' is not encrypted"]


def test_sizing_advisories() -> None:
    assert list(check_memory_per_cpu(vm())) == []
    starved = replace(vm(), props={**vm().props, "numCpus": 16, "memory": 4096})
    (msg,) = check_memory_per_cpu(starved)
    assert "256 MB per vCPU" in msg
    assert list(check_disk_size(vm())) == []
    huge = replace(vm(), props={**vm().props, "disks": [{"size": 4000}]})
    assert "4000 GB disk" in next(iter(check_disk_size(huge)))
    small_dr = ResourceView(
        type=AWS_INSTANCE,
        name="web-a1",
        props={"instanceType": "c6i.large"},
        labels={**LABELS, "site-role": ("dr",)},
    )
    ((name, msg),) = check_dr_capacity([vm(), small_dr])
    assert name == "web-a1"
    assert "smaller than the primary VMs of 'portal'" in msg
    big_dr = replace(small_dr, props={"instanceType": "m6i.xlarge"})
    assert list(check_dr_capacity([vm(), big_dr])) == []


def test_the_repository_production_stack_passes_its_mandatory_rules() -> None:
    model = load_model(PROD, check_machine=False)
    report = check(model, load_stack_file(STACK_FILE))
    assert report.ok, report.markdown()
    assert [v.policy for v in report.advisory] == ["vm-disk-size"]  # bkp-a1's 4000 GB repository


def test_removing_the_backup_tag_of_a_tier1_vm_fails() -> None:
    model = load_model(PROD, check_machine=False)
    seen = views(declare(model, load_stack_file(STACK_FILE)))
    stripped = [
        replace(v, labels={k: x for k, x in v.labels.items() if k != "backup-policy"})
        if v.name == "db-p1" and v.is_vm
        else v
        for v in seen
    ]
    mandatory = [v for v in evaluate(stripped) if v.enforcement == "mandatory"]
    assert [(v.policy, v.resource) for v in mandatory] == [("vm-backup-and-owner-tags", "db-p1")]
    assert mandatory[0].message.startswith(
        "tier-1 VM 'db-p1' (site principal) carries no backup policy tag (gestic-backup-policy)"
    )


def _gestic(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "500"},  # rich wraps long lines at the terminal width
    )


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")


def test_policy_check_command_fails_a_pr_that_excludes_a_tier1_vm_from_backups(
    tmp_path: Path,
) -> None:
    ok = _gestic("policy", "check", "--stack", "production", "--summary", str(tmp_path / "s.md"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "policy check passes" in ok.stdout
    assert "passes" in (tmp_path / "s.md").read_text()
    bad = tmp_path / "Pulumi.production.yaml"
    bad.write_text(
        STACK_FILE.read_text().replace("backupExclusions: []", "backupExclusions: [db-p1]")
    )
    proc = _gestic("policy", "check", "--config", str(bad))
    assert proc.returncode == 1
    assert "violates 1 mandatory rule(s)" in proc.stdout
    assert "vm-backup-and-owner-tags: tier-1 VM 'db-p1' (site principal) carries no backup" in (
        proc.stdout
    )


def test_policy_check_rejects_bad_config_before_declaring_anything(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.production.yaml"
    bad.write_text(STACK_FILE.read_text().replace("ami: ami-0a1b2c3d4e5f67890", "ami: debian"))
    proc = _gestic("policy", "check", "--config", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:" in proc.stdout
    assert "sites.alterno.aws.ami" in proc.stdout


# ---- the pack: the same rules as Pulumi policies ------------------------------------------


def _resource(
    typ: str, name: str, props: dict[str, Any], deps: dict[str, list[PolicyResource]] | None = None
) -> PolicyResource:
    return PolicyResource(
        resource_type=typ,
        props=props,
        urn=f"urn:pulumi:production::gestic-production::{typ}::{name}",
        name=name,
        opts=PolicyResourceOptions(
            protect=False,
            ignore_changes=[],
            delete_before_replace=None,
            aliases=[],
            additional_secret_outputs=[],
            custom_timeouts=None,  # type: ignore[arg-type]
        ),
        provider=None,
        parent=None,
        dependencies=[],
        property_dependencies=deps or {},
    )


def _vsphere_stack(*, with_backup: bool) -> list[PolicyResource]:
    categories = {
        label: _resource(VSPHERE_CATEGORY, f"gestic-{label}", {"name": f"gestic-{label}"})
        for label in LABELS
    }
    tags = [
        _resource(
            VSPHERE_TAG,
            f"{label}-{value}",
            {"name": value, "categoryId": "unknown"},
            {"categoryId": [categories[label]]},
        )
        for label, (value,) in LABELS.items()
        if with_backup or label != "backup-policy"
    ]
    machine = _resource(VSPHERE_VM, "db-p1", {"tags": ["unknown"] * len(tags)}, {"tags": tags})
    return [*categories.values(), *tags, machine]


def test_pack_resolves_vsphere_tags_through_dependencies_and_reports() -> None:
    (policy,) = [p for p in policies() if p.name == "vm-backup-and-owner-tags"]
    assert isinstance(policy, StackValidationPolicy)
    reports: list[tuple[str, str | None]] = []
    policy.validate(
        StackValidationArgs(_vsphere_stack(with_backup=True)),
        lambda m, u=None: reports.append((m, u)),
    )
    assert reports == []
    policy.validate(
        StackValidationArgs(_vsphere_stack(with_backup=False)),
        lambda m, u=None: reports.append((m, u)),
    )
    ((message, urn),) = reports
    assert "tier-1 VM 'db-p1' (site principal) carries no backup policy tag" in message
    assert urn is not None
    assert urn.endswith("::db-p1")


def test_pack_resource_policies_check_one_resource() -> None:
    by_name = {p.name: p for p in policies()}
    assert set(by_name) == {
        "vm-backup-and-owner-tags",
        "tier1-dr-counterpart",
        "no-open-management-port",
        "disks-encrypted",
        "vm-memory-per-cpu",
        "vm-disk-size",
        "dr-capacity",
    }
    ports = by_name["no-open-management-port"]
    assert isinstance(ports, ResourceValidationPolicy)
    reports: list[str] = []
    args = ResourceValidationArgs(
        resource_type=AWS_SECURITY_GROUP,
        props={
            "ingress": [
                {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        urn="urn:x",
        name="mgmt",
        opts=None,
        provider=None,  # type: ignore[arg-type]
    )
    ports.validate(args, lambda m, u=None: reports.append(m))
    assert reports == [
        "'mgmt' opens management port 22 (SSH) to any address (0.0.0.0/0): admit the "
        "management networks only"
    ]
