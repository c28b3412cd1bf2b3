"""The policy rules as Pulumi policies (`policy/` wires them into a PolicyPack).

Rules that read one resource's own properties become ResourceValidationPolicy objects. Rules that
read labels become StackValidationPolicy objects: a vSphere VM names its tags by id (unknown in a
preview until the tags exist), so its labels are resolved through the engine's property
dependencies (VM `tags` -> Tag resources -> their `categoryId` -> TagCategory resources), which
only a stack policy sees. Rules across resources (DR counterparts, DR capacity) are stack
policies by nature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from gestic.production.rules import (
    RULES,
    VSPHERE_CATEGORY,
    VSPHERE_TAG,
    VSPHERE_VM,
    ResourceView,
    Rule,
    labels_from_cloud_tags,
    labels_from_vsphere_tags,
)

PACK_NAME = "gestic-production"
_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def _tag_pairs(vm: PolicyResource) -> list[tuple[str, str]]:
    pairs = []
    for tag in vm.property_dependencies.get("tags", []):
        if tag.resource_type != VSPHERE_TAG:
            continue
        for category in tag.property_dependencies.get("categoryId", []):
            if category.resource_type == VSPHERE_CATEGORY:
                pairs.append((str(category.props.get("name")), str(tag.props.get("name"))))
    return pairs


def view_of(resource: PolicyResource) -> ResourceView:
    """The rules' view of a resource in a stack policy (vSphere tags resolved by dependency)."""
    props: Mapping[str, Any] = resource.props
    if resource.resource_type == VSPHERE_VM:
        labels = labels_from_vsphere_tags(_tag_pairs(resource))
    else:
        tags = props.get("tags")
        labels = labels_from_cloud_tags(tags) if isinstance(tags, Mapping) else {}
    return ResourceView(type=resource.resource_type, name=resource.name, props=props, labels=labels)


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        views: Sequence[ResourceView] = [view_of(r) for r in args.resources]
        urns = {r.name: r.urn for r in args.resources}
        for violation in rule.apply(views):
            report(violation.message, urns.get(violation.resource))

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=_LEVELS[rule.enforcement],
        validate=validate,
    )


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.resource_check
    assert check is not None

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        view = ResourceView(type=args.resource_type, name=args.name, props=args.props)
        for message in check(view):
            report(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        enforcement_level=_LEVELS[rule.enforcement],
        validate=validate,
    )


def policies(rules: Sequence[Rule] = RULES) -> list[Policy]:
    """One Pulumi policy per rule."""
    return [
        _stack_policy(rule)
        if rule.uses_labels or rule.resource_check is None
        else _resource_policy(rule)
        for rule in rules
    ]
