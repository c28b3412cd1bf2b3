"""Run the production program under Pulumi mocks and apply the policy rules to what it declares.

No vCenter or cloud account is reachable from the developers' machines, and running a policy pack
through the engine needs the Python language host, which is not available here. So the same rule
functions the pack wires (`gestic.production.rules`) are applied to the resources the program
declares under `pulumi.runtime.set_mocks`: every resource with its inputs, exactly as the engine
would receive them. The institution's CI also runs the real thing:
`pulumi preview --stack production --policy-pack policy/`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from gestic.errors import PolicyCheckError, ProductionPlanError
from gestic.model import Model
from gestic.production.config import PROJECT, ProductionConfig
from gestic.production.rules import (
    RULES,
    VSPHERE_VM,
    ResourceView,
    Violation,
    evaluate,
    labels_from_cloud_tags,
    labels_from_vsphere_tags,
)

#: What the mocked vSphere lookups answer (the objects the stack config names exist).
_TEMPLATE = {"guestId": "debian12_64Guest", "firmware": "efi", "scsiType": "pvscsi"}


@dataclass(frozen=True, kw_only=True)
class Declared:
    """One resource the program declared: type, logical name, mock id and inputs."""

    type: str
    name: str
    id: str
    inputs: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.type}::{self.name}"


class _Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Declared] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid = f"{args.name}-id"
        inputs = dict(args.inputs)
        self.resources.append(Declared(type=args.typ, name=args.name, id=rid, inputs=inputs))
        outputs = dict(inputs)
        if args.typ.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:mock:::{args.name}")
        return rid, outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        name = str(args.args.get("name", "x"))
        result: dict[str, Any] = {"id": f"{args.token.rsplit(':', 1)[-1]}-{name}", "name": name}
        if args.token.endswith("getComputeCluster"):
            result["resourcePoolId"] = f"resgroup-{name}"
        if args.token.endswith("getVirtualMachine"):
            result.update(_TEMPLATE)
        return result, []


def declare(
    model: Model,
    config: ProductionConfig,
    *,
    stack: str = "production",
) -> list[Declared]:
    """Every resource the production program declares for this model and config."""
    from gestic.production.program import production_program  # noqa: PLC0415 (after mocks)

    recorder = _Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=stack, preview=False)
    errors: list[BaseException] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        try:
            production_program(model, config)
        except (ProductionPlanError, ValueError) as exc:
            errors.append(exc)

    try:
        run()
    except asyncio.CancelledError as exc:  # pragma: no cover - engine shutdown
        raise PolicyCheckError(f"the production program was cancelled: {exc}") from exc
    if errors:
        raise PolicyCheckError(f"the production program cannot run: {errors[0]}") from errors[0]
    return recorder.resources


def views(declared: Sequence[Declared]) -> list[ResourceView]:
    """The rules' view of each resource: vSphere tag ids resolved, cloud tags read."""
    by_id = {d.id: d for d in declared}
    result = []
    for d in declared:
        labels: dict[str, tuple[str, ...]] = {}
        if d.type == VSPHERE_VM:
            pairs = []
            for tag_id in d.inputs.get("tags") or []:
                tag = by_id.get(str(tag_id))
                if tag is None:
                    continue
                category = by_id.get(str(tag.inputs.get("categoryId")))
                if category is not None:
                    pairs.append((str(category.inputs.get("name")), str(tag.inputs.get("name"))))
            labels = labels_from_vsphere_tags(pairs)
        elif isinstance(d.inputs.get("tags"), Mapping):
            labels = labels_from_cloud_tags(d.inputs["tags"])
        result.append(ResourceView(type=d.type, name=d.name, props=d.inputs, labels=labels))
    return result


@dataclass(frozen=True, kw_only=True)
class PolicyReport:
    stack: str
    declared: list[Declared]
    violations: list[Violation]
    rules: int = len(RULES)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "advisory"]

    @property
    def ok(self) -> bool:
        return not self.mandatory

    @property
    def vms(self) -> list[Declared]:
        return [d for d in self.declared if d.type in {VSPHERE_VM, "aws:ec2/instance:Instance"}]

    def markdown(self) -> str:
        verdict = "passes" if self.ok else "FAILS"
        lines = [
            f"### Policy check of stack `{self.stack}`: {verdict}",
            "",
            f"{len(self.declared)} resources declared ({len(self.vms)} VMs), {self.rules} rules: "
            f"{len(self.mandatory)} mandatory violations, {len(self.advisory)} advisories.",
            "",
        ]
        for title, items in (("Mandatory", self.mandatory), ("Advisory", self.advisory)):
            if items:
                lines += [f"**{title}**", ""]
                lines += [f"- `{v.policy}` {v.message}" for v in items]
                lines.append("")
        return "\n".join(lines)


def check(model: Model, config: ProductionConfig, *, stack: str = "production") -> PolicyReport:
    """Declare the stack under mocks and apply every rule."""
    declared = declare(model, config, stack=stack)
    found = evaluate(views(declared))
    counts = Counter(d.type for d in declared)
    return PolicyReport(stack=stack, declared=declared, violations=found, counts=dict(counts))


@dataclass(frozen=True, kw_only=True)
class ResourceDiff:
    """What `up` would do between two declarations: by resource, create/delete/update."""

    created: list[str]
    deleted: list[str]
    updated: dict[str, list[str]]  # resource -> changed input keys

    @property
    def empty(self) -> bool:
        return not (self.created or self.deleted or self.updated)

    def lines(self) -> list[str]:
        out = [f"+ {k}" for k in self.created]
        out += [f"- {k}" for k in self.deleted]
        out += [f"~ {k} ({', '.join(keys)})" for k, keys in sorted(self.updated.items())]
        return out


def _comparable(inputs: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    # mock ids are "<name>-id": compare by the name they point to, so a reference to the same
    # resource is equal on both sides
    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return ids.get(value, value)
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value

    return {k: norm(v) for k, v in inputs.items()}


def diff_declared(before: Sequence[Declared], after: Sequence[Declared]) -> ResourceDiff:
    """The resources `after` adds, removes and changes relative to `before`."""
    old = {d.key: d for d in before}
    new = {d.key: d for d in after}
    old_ids = {d.id: d.key for d in before}
    new_ids = {d.id: d.key for d in after}
    updated: dict[str, list[str]] = {}
    for key in sorted(set(old) & set(new)):
        a = _comparable(old[key].inputs, old_ids)
        b = _comparable(new[key].inputs, new_ids)
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            updated[key] = changed
    return ResourceDiff(
        created=sorted(set(new) - set(old)), deleted=sorted(set(old) - set(new)), updated=updated
    )


def stack_config_path(root: Path, stack: str) -> Path:
    return root / "stacks" / "production" / f"Pulumi.{stack}.yaml"
