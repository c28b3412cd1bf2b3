"""Drift detection: does the environment still match the repository?

Two questions, both asked without changing anything:

- the stack: a refresh-preview reads every resource's real state and a preview compares the
  program with it (`pulumi preview --refresh --expect-no-changes` semantics): any resource the
  engine would create, update, replace or delete has drifted;
- the hosts: Ansible runs `site.yml` in `--check --diff` mode: any task that would change a host
  has drifted, and its diff says how. A host Ansible cannot reach or a task that fails is
  reported too (drift cannot be ruled out there).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from gestic.errors import EngineError
from gestic.tools.ansible.runner import run_playbook
from gestic.tools.pulumi.automation import LabStack
from gestic.tools.ssh import SshAccess

#: Engine operations that mean "the real resource is not what the program declares".
_DRIFT_OPS = {
    auto.OpType.CREATE,
    auto.OpType.UPDATE,
    auto.OpType.DELETE,
    auto.OpType.REPLACE,
    auto.OpType.CREATE_REPLACEMENT,
    auto.OpType.DELETE_REPLACED,
    auto.OpType.DISCARD,
}
_SKIP_TYPES = {"pulumi:pulumi:Stack"}
#: Limits of the Markdown report (it may become a pull request comment).
MAX_DIFF_LINES = 40
MAX_MARKDOWN_CHARS = 50_000


@dataclass(frozen=True, kw_only=True)
class ResourceDrift:
    """A stack resource the engine would change."""

    name: str
    type: str
    op: str
    properties: tuple[str, ...] = ()

    def __str__(self) -> str:
        props = f" ({', '.join(self.properties)})" if self.properties else ""
        return f"{self.op} {self.type} {self.name}{props}"


@dataclass(frozen=True, kw_only=True)
class TaskDrift:
    """A task that would change a host (or could not be checked on it)."""

    host: str
    task: str
    role: str = ""
    state: str = "changed"  # changed | failed | unreachable
    diff: str = ""

    def __str__(self) -> str:
        role = f"{self.role} : " if self.role else ""
        return f"{self.host}: {self.state}: {role}{self.task}"


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    stack: str
    resources: list[ResourceDrift] = field(default_factory=list)
    tasks: list[TaskDrift] = field(default_factory=list)
    hosts_checked: int = 0
    duration_s: float = 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.resources or self.tasks)

    @property
    def hosts(self) -> list[str]:
        return sorted({t.host for t in self.tasks})

    def markdown(self) -> str:
        verdict = "drift found" if self.drifted else "no drift"
        lines = [
            f"### Drift of `{self.stack}`: {verdict}",
            "",
            f"{len(self.resources)} stack resources and {len(self.tasks)} host tasks differ "
            f"from the repository ({self.hosts_checked} hosts checked, {self.duration_s:.0f} s).",
            "",
        ]
        if self.resources:
            lines += ["**Stack resources**", ""] + [f"- `{r}`" for r in self.resources] + [""]
        if self.tasks:
            lines += ["**Hosts**", ""]
            for t in self.tasks:
                lines.append(f"- `{t}`")
                if t.diff:
                    diff = t.diff.splitlines()
                    shown = diff[:MAX_DIFF_LINES]
                    if len(diff) > len(shown):
                        shown.append(f"... ({len(diff) - len(shown)} more lines)")
                    lines += ["", "  ```diff", *(f"  {ln}" for ln in shown), "  ```"]
            lines.append("")
        text = "\n".join(lines)
        if len(text) > MAX_MARKDOWN_CHARS:  # a PR comment holds 65536 characters
            cut = text[:MAX_MARKDOWN_CHARS].rsplit("\n", 1)[0]
            text = f"{cut}\n\n... (report truncated: see `gestic drift --json` or the ledger)"
        return text


def _props(meta: auto.StepEventMetadata) -> tuple[str, ...]:
    """The properties that differ: the provider's diff, else the inputs compared by hand."""
    keys = list(meta.diffs or [])
    keys += [k for k in (meta.detailed_diff or {}) if k not in keys]
    if not keys and meta.old is not None and meta.new is not None:
        old, new = meta.old.inputs or {}, meta.new.inputs or {}
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return tuple(keys)


def stack_drift(stack: LabStack) -> list[ResourceDrift]:
    """Resources whose real state differs from the program (refresh-preview, then preview)."""
    found: dict[str, ResourceDrift] = {}

    def collect(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None or pre.metadata.type in _SKIP_TYPES:
            return
        meta = pre.metadata
        refreshed_changed = meta.op == auto.OpType.REFRESH and bool(_props(meta))
        if meta.op in _DRIFT_OPS or refreshed_changed:
            name = meta.urn.rsplit("::", 1)[-1]
            found[meta.urn] = ResourceDrift(
                name=name, type=meta.type, op=str(meta.op.value), properties=_props(meta)
            )

    engine_stack = stack._stack()
    try:
        engine_stack.preview(refresh=True, diff=True, on_event=collect)
    except auto.CommandError as exc:
        raise EngineError(f"drift preview of stack '{stack.name}' failed:\n{exc}") from exc
    return sorted(found.values(), key=lambda r: r.name)


def _diff_text(diff: Any) -> str:
    """Ansible's `diff` result (one dict or a list of them) as unified diff text."""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if "prepared" in part:
            out.append(str(part["prepared"]).rstrip("\n"))
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = _kv(before), _kv(after)
        out += difflib.unified_diff(
            str(before).splitlines(),
            str(after).splitlines(),
            fromfile=str(part.get("before_header", "before")),
            tofile=str(part.get("after_header", "after")),
            lineterm="",
        )
    return "\n".join(out)


def _kv(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value)
    return "\n".join(f"{k}: {v}" for k, v in sorted(value.items()))


class _TaskCollector:
    """ansible-runner event sink keeping the tasks that would change, fail or not reach a host."""

    def __init__(self) -> None:
        self.tasks: list[TaskDrift] = []
        self.hosts: set[str] = set()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        data = event.get("event_data", {})
        host = str(data.get("host", ""))
        if host:
            self.hosts.add(host)
        res = data.get("res", {}) or {}
        state = {
            "runner_on_failed": "failed",
            "runner_on_unreachable": "unreachable",
        }.get(str(kind))
        if kind == "runner_on_ok" and res.get("changed"):
            state = "changed"
        if state is None or (state == "failed" and data.get("ignore_errors")):
            return
        self.tasks.append(
            TaskDrift(
                host=host,
                task=str(data.get("task", "")),
                role=str(data.get("role", "") or ""),
                state=state,
                diff=_diff_text(res.get("diff")) if state == "changed" else str(res.get("msg", "")),
            )
        )


def host_drift(
    *,
    playbooks_dir: Path,
    inventory: Path,
    access: SshAccess,
    artifacts_dir: Path,
    limit: str | None = None,
    tags: str | None = None,
) -> tuple[list[TaskDrift], int]:
    """Tasks of `site.yml` that would change a host, from a `--check --diff` run."""
    collector = _TaskCollector()
    result = run_playbook(
        playbooks_dir=playbooks_dir,
        playbook="site.yml",
        inventory=inventory,
        access=access,
        artifacts_dir=artifacts_dir,
        check=True,
        diff=True,
        limit=limit,
        tags=tags,
        event_sink=collector,
    )
    return collector.tasks, len(result.per_host)


def detect(
    *,
    stack: LabStack | None,
    playbooks_dir: Path,
    inventory: Path,
    access: SshAccess,
    artifacts_dir: Path,
    limit: str | None = None,
    tags: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DriftReport:
    """Both checks (the stack one is skipped when `stack` is None)."""
    start = time.monotonic()
    resources: list[ResourceDrift] = []
    name = stack.name if stack is not None else "hosts"
    # Ansible first: it forks, and forking is safest before the engine's gRPC threads start
    if on_step:
        on_step("hosts: ansible --check --diff")
    tasks, hosts = host_drift(
        playbooks_dir=playbooks_dir,
        inventory=inventory,
        access=access,
        artifacts_dir=artifacts_dir,
        limit=limit,
        tags=tags,
    )
    if stack is not None:
        if on_step:
            on_step(f"stack {stack.name}: refresh and preview")
        resources = stack_drift(stack)
    return DriftReport(
        stack=name,
        resources=resources,
        tasks=tasks,
        hosts_checked=hosts,
        duration_s=time.monotonic() - start,
    )
