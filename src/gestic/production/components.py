"""Pulumi components of the production datacenter: one per site platform, plus their labels.

A vSphere site clones each VM from a template into the site's cluster and datastore, on a
distributed port group carrying the site network's VLAN, with an encryption storage policy on the
VM and its disks, and vSphere tags for every label. An AWS site holds the site network as a
subnet of its own VPC, runs each VM as an EBS-encrypted instance (customer KMS key) with the
labels as tags, admits management traffic only from the management networks, and protects every
instance with the AWS Backup plan its backup-policy tag names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_vsphere as vsphere

from gestic.model import BackupPolicy, Site
from gestic.production import config as cfg
from gestic.production.plan import LABELS, SINGLE_LABELS, VmSpec
from gestic.production.sizing import instance_type_for

#: SSH is the only management protocol the Linux estate uses.
SSH_PORT = 22
DAY_MINUTES = 24 * 60


def category_name(label: str) -> str:
    """The vSphere tag category of a label (and the prefix of its cloud tag)."""
    return f"gestic-{label}"


def cloud_tag(label: str) -> str:
    return f"gestic:{label}"


def cloud_tags(spec: VmSpec) -> dict[str, str]:
    """A VM's labels as cloud tags (several values joined by spaces) plus its Name."""
    return {"Name": spec.name, **{cloud_tag(k): " ".join(v) for k, v in spec.labels.items()}}


class VsphereTags(pulumi.ComponentResource):
    """One tag category per label and one tag per value the site's VMs use."""

    def __init__(
        self, name: str, specs: Sequence[VmSpec], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("gestic:production:VsphereTags", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.categories: dict[str, vsphere.TagCategory] = {}
        self.tags: dict[tuple[str, str], vsphere.Tag] = {}
        for label in LABELS:
            values = sorted({v for s in specs for v in s.labels.get(label, ())})
            if not values:
                continue
            category = vsphere.TagCategory(
                category_name(label),
                name=category_name(label),
                description=f"gestic model label '{label}'",
                cardinality="SINGLE" if label in SINGLE_LABELS else "MULTIPLE",
                associable_types=["VirtualMachine"],
                opts=child,
            )
            self.categories[label] = category
            for value in values:
                self.tags[(label, value)] = vsphere.Tag(
                    f"{label}-{value}",
                    name=value,
                    category_id=category.id,
                    description=f"{label}: {value}",
                    opts=child,
                )
        self.register_outputs({"categories": [category_name(k) for k in self.categories]})

    def ids_for(self, spec: VmSpec) -> list[pulumi.Output[str]]:
        return [self.tags[(k, v)].id for k, values in sorted(spec.labels.items()) for v in values]


@dataclass(frozen=True, kw_only=True)
class VsphereSiteArgs:
    site: Site
    settings: cfg.VsphereSite
    vms: Sequence[VmSpec]
    credentials: pulumi.Input[Mapping[str, str]] | None = None


class VsphereSite(pulumi.ComponentResource):
    """A site in a vCenter: port group, tags and one VM per model host of the site."""

    def __init__(self, args: VsphereSiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gestic:production:VsphereSite", args.site.name, None, opts)
        s = args.settings
        creds = pulumi.Output.from_input(args.credentials) if args.credentials is not None else None
        self.provider = vsphere.Provider(
            f"{args.site.name}-vcenter",
            vsphere_server=s.server,
            allow_unverified_ssl=s.allow_unverified_ssl,
            user=creds.apply(lambda c: c["user"]) if creds is not None else None,
            # the provider marks the password secret in the state
            password=creds.apply(lambda c: c["password"]) if creds is not None else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        invoke = pulumi.InvokeOptions(provider=self.provider)
        dc = vsphere.get_datacenter(name=s.datacenter, opts=invoke)
        cluster = vsphere.get_compute_cluster(name=s.cluster, datacenter_id=dc.id, opts=invoke)
        datastore = vsphere.get_datastore(name=s.datastore, datacenter_id=dc.id, opts=invoke)
        switch = vsphere.get_distributed_virtual_switch(
            name=s.distributed_switch, datacenter_id=dc.id, opts=invoke
        )
        template = vsphere.get_virtual_machine(name=s.template, datacenter_id=dc.id, opts=invoke)
        encryption = vsphere.get_policy(name=s.encryption_policy, opts=invoke)
        self.port_group = vsphere.DistributedPortGroup(
            f"{args.site.name}-network",
            name=f"gestic-{args.site.name}-{args.site.network.network_address}",
            distributed_virtual_switch_uuid=switch.id,
            vlan_id=s.vlan_id,
            opts=child,
        )
        self.tags = VsphereTags(f"{args.site.name}-tags", args.vms, opts=child)
        self.vms: dict[str, vsphere.VirtualMachine] = {}
        for spec in args.vms:
            self.vms[spec.name] = vsphere.VirtualMachine(
                spec.name,
                name=spec.name,
                folder=s.folder,
                resource_pool_id=cluster.resource_pool_id,
                datastore_id=datastore.id,
                num_cpus=spec.cpus,
                memory=spec.memory_mb,
                guest_id=template.guest_id,
                firmware=template.firmware,
                scsi_type=template.scsi_type,
                storage_policy_id=encryption.id,
                annotation=_annotation(spec),
                network_interfaces=[{"network_id": self.port_group.id, "adapter_type": "vmxnet3"}],
                disks=[
                    {
                        "label": "disk0",
                        "size": spec.disk_gb,
                        "thin_provisioned": True,
                        "storage_policy_id": encryption.id,
                    }
                ],
                clone={
                    "template_uuid": template.id,
                    "customize": {
                        "linux_options": {"host_name": spec.name, "domain": s.domain},
                        "network_interfaces": [
                            {"ipv4_address": spec.address, "ipv4_netmask": spec.prefix_length}
                        ],
                        "ipv4_gateway": spec.gateway,
                        "dns_server_lists": [str(d) for d in s.dns_servers],
                    },
                },
                tags=self.tags.ids_for(spec),
                opts=child,
            )
        self.register_outputs(
            {"vms": {n: vm.default_ip_address for n, vm in self.vms.items()}, "platform": "vsphere"}
        )


def _annotation(spec: VmSpec) -> str:
    services = ", ".join(spec.services) or "no service"
    return f"gestic: {services}; owner {spec.labels['owner'][0]}; site {spec.site}"


_CALENDAR = re.compile(r"^\*-\*-\* (\d{2}):(\d{2})(?::00)?$")


def aws_schedule(schedule: str) -> str:
    """An AWS Backup cron expression for a model schedule (systemd OnCalendar subset)."""
    if schedule == "hourly":
        return "cron(0 * * * ? *)"
    if schedule == "daily":
        return "cron(0 0 * * ? *)"
    if m := _CALENDAR.match(schedule):
        return f"cron({int(m.group(2))} {int(m.group(1))} * * ? *)"
    raise ValueError(
        f"schedule '{schedule}' has no AWS Backup equivalent here: use hourly, daily or "
        "'*-*-* HH:MM:00'"
    )


def retention_days(policy: BackupPolicy) -> int:
    """How long the policy keeps its oldest snapshot, in days (at least one)."""
    r = policy.retention
    return max(1, r.hourly // 24, r.daily, r.weekly * 7, r.monthly * 31)


@dataclass(frozen=True, kw_only=True)
class AwsSiteArgs:
    site: Site
    settings: cfg.AwsSite
    vms: Sequence[VmSpec]
    management_cidrs: Sequence[str]
    peer_networks: Sequence[str]
    backup_policies: Mapping[str, BackupPolicy]
    environment: str


class AwsSite(pulumi.ComponentResource):
    """A site in an AWS region: VPC and subnet, security groups, KMS key, instances, backups."""

    def __init__(self, args: AwsSiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gestic:production:AwsSite", args.site.name, None, opts)
        s, name = args.settings, args.site.name
        self.provider = aws.Provider(
            f"{name}-aws",
            region=s.region,
            default_tags={"tags": {cloud_tag("environment"): args.environment}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        site_tags = {cloud_tag("site"): name}
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(s.vpc_cidr),
            enable_dns_hostnames=True,
            tags={**site_tags, "Name": f"gestic-{name}"},
            opts=child,
        )
        self.subnet = aws.ec2.Subnet(
            f"{name}-subnet",
            vpc_id=self.vpc.id,
            cidr_block=str(args.site.network),
            availability_zone=s.availability_zone,
            map_public_ip_on_launch=False,
            tags={**site_tags, "Name": f"gestic-{name}-{args.site.network.network_address}"},
            opts=child,
        )
        self.management = aws.ec2.SecurityGroup(
            f"{name}-management",
            description="SSH from the management networks only",
            vpc_id=self.vpc.id,
            ingress=[
                {
                    "description": "SSH from the management networks",
                    "protocol": "tcp",
                    "from_port": SSH_PORT,
                    "to_port": SSH_PORT,
                    "cidr_blocks": list(args.management_cidrs),
                }
            ],
            tags=site_tags,
            opts=child,
        )
        self.sites_sg = aws.ec2.SecurityGroup(
            f"{name}-sites",
            description="Service and replication traffic between the institution's sites",
            vpc_id=self.vpc.id,
            ingress=[
                {
                    "description": "Traffic from the sites' networks",
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": list(args.peer_networks),
                }
            ],
            egress=[
                {
                    "description": "Traffic to the sites' networks",
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": list(args.peer_networks),
                }
            ],
            tags=site_tags,
            opts=child,
        )
        self.key = aws.kms.Key(
            f"{name}-disks",
            description=f"gestic {name}: EBS volumes and backup vault",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=site_tags,
            opts=child,
        )
        self.instances: dict[str, aws.ec2.Instance] = {}
        for spec in args.vms:
            self.instances[spec.name] = aws.ec2.Instance(
                spec.name,
                ami=s.ami,
                instance_type=instance_type_for(spec.cpus, spec.memory_mb).name,
                subnet_id=self.subnet.id,
                private_ip=spec.address,
                vpc_security_group_ids=[self.management.id, self.sites_sg.id],
                root_block_device={
                    "volume_size": spec.disk_gb,
                    "volume_type": s.volume_type,
                    "encrypted": True,
                    "kms_key_id": self.key.arn,
                    "delete_on_termination": False,
                },
                metadata_options={"http_tokens": "required"},
                disable_api_termination=True,
                tags=cloud_tags(spec),
                opts=child,
            )
        self.backups = AwsBackups(
            f"{name}-backups",
            policies={
                name: args.backup_policies[name]
                for name in sorted({v.backup_policy for v in args.vms if v.backup_policy})
            },
            kms_key_arn=self.key.arn,
            opts=child,
        )
        self.register_outputs(
            {"vms": {n: i.private_ip for n, i in self.instances.items()}, "platform": "aws"}
        )


class AwsBackups(pulumi.ComponentResource):
    """An encrypted vault and one AWS Backup plan per model policy, selecting by tag."""

    def __init__(
        self,
        name: str,
        *,
        policies: Mapping[str, BackupPolicy],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("gestic:production:AwsBackups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vault = aws.backup.Vault(
            f"{name}-vault", name=f"gestic-{name}", kms_key_arn=kms_key_arn, opts=child
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "backup.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-role-backup",
            role=self.role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
            opts=child,
        )
        self.plans: dict[str, aws.backup.Plan] = {}
        for policy in policies.values():
            plan = aws.backup.Plan(
                f"{name}-{policy.name}",
                name=f"gestic-{policy.name}",
                rules=[
                    {
                        "rule_name": policy.name,
                        "target_vault_name": self.vault.name,
                        "schedule": aws_schedule(policy.schedule),
                        "lifecycle": {"delete_after": retention_days(policy)},
                    }
                ],
                opts=child,
            )
            aws.backup.Selection(
                f"{name}-{policy.name}",
                name=f"gestic-{policy.name}",
                plan_id=plan.id,
                iam_role_arn=self.role.arn,
                selection_tags=[
                    {
                        "type": "STRINGEQUALS",
                        "key": cloud_tag("backup-policy"),
                        "value": policy.name,
                    }
                ],
                opts=child,
            )
            self.plans[policy.name] = plan
        self.register_outputs({"plans": sorted(self.plans)})
