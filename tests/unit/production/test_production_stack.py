"""The production stack under Pulumi mocks: every model host is a VM of the right size, on its
site's network, with its tags and backup policy; tier-1 services have DR counterparts."""

from __future__ import annotations

import shutil
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from gestic.errors import ConfigError, PolicyCheckError, ProductionPlanError
from gestic.model import Model, load_model
from gestic.procedures.change.policy import Declared, declare, diff_declared, views
from gestic.production.components import aws_schedule, retention_days
from gestic.production.config import ProductionConfig, load_stack_file
from gestic.production.plan import plan
from gestic.production.rules import AWS_INSTANCE, VSPHERE_VM, ResourceView
from gestic.production.sizing import instance_type, instance_type_for

from ...paths import ROOT

PROD_INVENTORY = ROOT / "inventory" / "production"
STACK_FILE = ROOT / "stacks" / "production" / "Pulumi.production.yaml"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(PROD_INVENTORY, check_machine=False)


@pytest.fixture(scope="module")
def config() -> ProductionConfig:
    return load_stack_file(STACK_FILE)


@pytest.fixture(scope="module")
def declared(model: Model, config: ProductionConfig) -> list[Declared]:
    return declare(model, config)


@pytest.fixture(scope="module")
def vms(declared: list[Declared]) -> dict[str, ResourceView]:
    return {v.name: v for v in views(declared) if v.is_vm}


def _by(declared: list[Declared], name: str, typ: str) -> Declared:
    (found,) = [d for d in declared if d.name == name and d.type == typ]
    return found


def test_every_model_host_is_one_vm_on_its_sites_platform(
    model: Model, config: ProductionConfig, vms: dict[str, ResourceView]
) -> None:
    assert set(vms) == set(model.hosts)
    for host in model.hosts.values():
        platform = config.sites[host.site].platform
        assert vms[host.name].type == (VSPHERE_VM if platform == "vsphere" else AWS_INSTANCE)


def test_vsphere_vms_have_the_model_size_network_and_encryption(
    model: Model, declared: list[Declared], vms: dict[str, ResourceView]
) -> None:
    group = _by(
        declared, "principal-network", "vsphere:index/distributedPortGroup:DistributedPortGroup"
    )
    assert group.inputs["vlanId"] == 110
    for host in model.hosts_at("principal"):
        p = vms[host.name].props
        assert (p["numCpus"], p["memory"]) == (host.size.cpus, host.size.memory_mb)
        (disk,) = p["disks"]
        assert disk["size"] == host.size.disk_gb
        assert disk["storagePolicyId"] == p["storagePolicyId"] == "getPolicy-VM Encryption Policy"
        assert p["networkInterfaces"] == [{"networkId": group.id, "adapterType": "vmxnet3"}]
        custom = p["clone"]["customize"]
        assert custom["networkInterfaces"] == [
            {"ipv4Address": str(host.address), "ipv4Netmask": 24}
        ]
        assert custom["ipv4Gateway"] == "172.20.10.1"
        assert custom["linuxOptions"]["hostName"] == host.name


def test_aws_instances_fit_the_model_size_and_sit_in_the_site_subnet(
    model: Model, declared: list[Declared], vms: dict[str, ResourceView]
) -> None:
    subnet = _by(declared, "alterno-subnet", "aws:ec2/subnet:Subnet")
    assert subnet.inputs["cidrBlock"] == "172.20.20.0/24"
    for host in model.hosts_at("alterno"):
        p = vms[host.name].props
        itype = instance_type(p["instanceType"])
        assert itype is not None
        assert itype.cpus >= host.size.cpus
        assert itype.memory_mb >= host.size.memory_mb
        assert p["privateIp"] == str(host.address)
        assert p["subnetId"] == subnet.id
        assert p["rootBlockDevice"]["volumeSize"] == host.size.disk_gb
        assert p["rootBlockDevice"]["encrypted"] is True


def test_every_vm_carries_owner_backup_policy_tier_and_services(
    model: Model, vms: dict[str, ResourceView]
) -> None:
    for host in model.hosts.values():
        labels = vms[host.name].labels
        services = model.services_on(host.name)
        assert labels["owner"] == (host.owner,)
        assert labels["site"] == (host.site,)
        if services:
            assert labels["services"] == tuple(sorted(s.name for s in services))
            assert labels["tier"] == (str(min(s.tier for s in services)),)
            assert labels["backup-policy"][0] in {s.backup.policy for s in services}
        else:
            assert labels["backup-policy"] == ("diario",)  # unservicedBackupPolicy
            assert "tier" not in labels
    assert vms["db-p1"].labels["backup-policy"] == ("horario",)
    assert vms["svc-p1"].labels["services"] == ("registros", "transferencia")


def test_tier1_services_have_dr_counterparts(model: Model, vms: dict[str, ResourceView]) -> None:
    tier1 = [s for s in model.services.values() if s.tier == 1]
    assert tier1
    for svc in tier1:
        at_dr = [
            v
            for v in vms.values()
            if v.label("site-role") == "dr" and svc.name in v.labels.get("services", ())
        ]
        assert {v.name for v in at_dr} == set(svc.dr_hosts)


def test_aws_backup_plans_select_instances_by_their_policy_tag(declared: list[Declared]) -> None:
    selections = {d.name: d for d in declared if d.type == "aws:backup/selection:Selection"}
    assert set(selections) == {"alterno-backups-horario", "alterno-backups-diario"}
    tag = selections["alterno-backups-horario"].inputs["selectionTags"][0]
    assert (tag["key"], tag["value"]) == ("gestic:backup-policy", "horario")
    plan_ = _by(declared, "alterno-backups-horario", "aws:backup/plan:Plan")
    assert plan_.inputs["rules"][0]["schedule"] == "cron(0 * * * ? *)"


def test_adding_a_host_to_a_copy_of_the_model_adds_a_vm(
    tmp_path: Path, config: ProductionConfig, declared: list[Declared]
) -> None:
    inv = tmp_path / "production"
    shutil.copytree(PROD_INVENTORY, inv)
    hosts = inv / "hosts.yml"
    hosts.write_text(
        hosts.read_text()
        .replace(
            "        db-p1:\n",
            "        web-p3:\n          gestic_address: 172.20.10.13\n"
            "          gestic_owner: infraestructura\n"
            "          gestic_size: {cpus: 4, memory_mb: 8192, disk_gb: 80}\n        db-p1:\n",
            1,
        )
        .replace(
            "        web-p2:\n        web-a1:", "        web-p2:\n        web-p3:\n        web-a1:"
        )
    )
    services = inv / "group_vars" / "all" / "services.yml"
    services.write_text(
        services.read_text().replace("[web-p1, web-p2]", "[web-p1, web-p2, web-p3]")
    )
    grown = load_model(inv, check_machine=False)
    after = declare(grown, config)
    diff = diff_declared(declared, after)
    assert diff.created == [f"{VSPHERE_VM}::web-p3"]
    assert diff.deleted == []
    assert not diff.updated
    new_vm = _by(after, "web-p3", VSPHERE_VM)
    assert (
        new_vm.inputs["clone"]["customize"]["networkInterfaces"][0]["ipv4Address"] == "172.20.10.13"
    )


def test_stack_config_errors_name_file_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.production.yaml"
    bad.write_text(STACK_FILE.read_text().replace("vlanId: 110", "vlanId: 9000"))
    with pytest.raises(ConfigError) as err:
        load_stack_file(bad)
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "vlanId" in t)
    assert f"{bad}:{line}: gestic-production:sites.principal.vsphere.vlanId" in str(err.value)
    assert "less than or equal to 4094" in str(err.value)


def test_a_site_without_its_platform_section_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.production.yaml"
    bad.write_text(STACK_FILE.read_text().replace("platform: aws", "platform: vsphere"))
    with pytest.raises(ConfigError, match=r"sites\.alterno: platform is 'vsphere' but there is no"):
        load_stack_file(bad)


def test_unknown_backup_exclusion_is_rejected(model: Model) -> None:
    with pytest.raises(ProductionPlanError, match="web-p9"):
        plan(model, unserviced_backup_policy="diario", backup_exclusions=frozenset({"web-p9"}))


def test_sizes_and_schedules_translate_to_the_cloud() -> None:
    assert instance_type_for(4, 8192).name == "c6i.xlarge"
    assert instance_type_for(8, 32768).name == "m6i.2xlarge"
    assert instance_type_for(2, 4096).name == "c6i.large"
    with pytest.raises(ValueError, match="no instance type"):
        instance_type_for(128, 1024)
    assert aws_schedule("*-*-* 01:30:00") == "cron(30 1 * * ? *)"
    assert aws_schedule("hourly") == "cron(0 * * * ? *)"
    with pytest.raises(ValueError, match="no AWS Backup equivalent"):
        aws_schedule("Mon *-*-* 01:00:00")
    model = load_model(PROD_INVENTORY, check_machine=False)
    assert retention_days(model.backup_policies["horario"]) == 12 * 31


def test_a_dr_network_outside_its_vpc_is_refused(model: Model, config: ProductionConfig) -> None:
    alterno = config.sites["alterno"]
    assert alterno.aws is not None
    moved = alterno.model_copy(
        update={"aws": alterno.aws.model_copy(update={"vpc_cidr": IPv4Network("10.9.0.0/16")})}
    )
    bad = config.model_copy(update={"sites": {**config.sites, "alterno": moved}})
    with pytest.raises(PolicyCheckError, match=r"network 172\.20\.20\.0/24 is not inside"):
        declare(model, bad)
