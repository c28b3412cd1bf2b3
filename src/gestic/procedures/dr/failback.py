"""DR failback: undo what drills did (hosts started again, recoveries undone, endpoints on
the primary site, no isolation rule) and prove it, plus the drill state that lets an
interrupted drill be cleaned up. `gestic.procedures.dr.drill` runs drills and calls `cleanup`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gestic.environments.context import Context
from gestic.errors import GesticError
from gestic.lab import host as lab_host
from gestic.procedures.dr.plan import Plan
from gestic.procedures.dr.rpa_service import FailbackReport, failback_hosts
from gestic.tools.ansible.runner import run_playbook

Say = Callable[[str], None]

STATUS_TASK = "Report what recoveries left on this host"
LOGIN_TIMEOUT_S = 90.0


@dataclass(kw_only=True)
class CleanupResult:
    ok: bool
    duration_s: float
    undone: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    started_hosts: list[str] = field(default_factory=list)


# --- state (so an interrupted drill can be cleaned up) ----------------------------------------


def state_file(ctx: Context) -> Path:
    return ctx.access.state_dir / "dr" / "drill.json"


def save_state(ctx: Context, data: dict[str, Any]) -> None:
    file = state_file(ctx)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(file)


def load_state(ctx: Context) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(state_file(ctx).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


# --- cleanup / failback -----------------------------------------------------------------------


def start_stopped_hosts(ctx: Context, *, say: Say = lambda _m: None) -> tuple[list[str], list[str]]:
    """Start every lab host that is not running (a drill stopped it, or it died) and wait until
    the automation account can log in; return (hosts started, problems).

    The stack's state still records a host stopped outside Pulumi as running, so `up` alone
    would change nothing: `refresh` first records that it is gone, then `up` boots it again.
    """
    if not ctx.is_lab:
        return [], []  # gestic stops hosts only in a lab (a real drill)
    settings = ctx.lab_stack.settings
    model = ctx.model
    stopped = sorted(
        h for h in model.hosts if lab_host.host_pid(state_dir=settings.state_dir, name=h) is None
    )
    if not stopped:
        return [], []
    say(f"starting {', '.join(stopped)} again (pulumi refresh + up)")
    problems: list[str] = []
    try:
        ctx.lab_stack.run("refresh")
        ctx.lab_stack.run("up")
    except GesticError as exc:
        problems.append(f"restarting {', '.join(stopped)} failed: {exc}")
    started = [
        h for h in stopped if lab_host.host_pid(state_dir=settings.state_dir, name=h) is not None
    ]
    problems += [f"host {h} is still stopped" for h in stopped if h not in started]
    ctx.access.write(model)
    ctx.access.drop_masters(started)
    refused = ctx.access.wait_for_login(
        {h: model.hosts[h].address for h in started}, timeout=LOGIN_TIMEOUT_S
    )
    problems += [f"host {h} started but refuses SSH logins: {why}" for h, why in refused.items()]
    return started, problems


def cleanup(ctx: Context, plan: Plan, *, say: Say = lambda _m: None) -> CleanupResult:
    """Undo what drills did and verify it; idempotent (converges after an interruption too)."""
    t0 = time.time()
    model = ctx.model
    leftovers: list[str] = []
    removed = ctx.isolation.release()
    undone = [f"{removed} isolation rules removed"] if removed else []
    started, unusable = start_stopped_hosts(ctx, say=say)
    leftovers += unusable
    cleanup_map: dict[str, list[dict[str, Any]]] = {}
    for svc in plan.restored_services():  # the RPA service's schedulers: below
        for dr_host in model.services[svc].dr_hosts:
            cleanup_map.setdefault(dr_host, []).append(
                {"service": svc, "units": list(plan.services[svc].start)}
            )
    endpoints = {
        e.name: str(model.hosts[model.services[e.service].hosts[0]].address) for e in plan.endpoints
    }
    statuses: dict[str, dict[str, Any]] = {}
    changed: list[str] = []
    rpa_hosts = failback_hosts(model, plan)
    rpa = FailbackReport()

    def sink(event: dict[str, Any]) -> None:
        rpa.event(event)
        data = event.get("event_data", {})
        res = data.get("res", {}) or {}
        if event.get("event") == "runner_on_ok" and data.get("task") == STATUS_TASK:
            statuses[data.get("host", "?")] = json.loads(res.get("stdout") or "{}")
        if event.get("event") == "runner_item_on_ok" and res.get("changed"):
            item = res.get("item", {})
            if isinstance(item, dict) and "service" in item:
                changed.append(f"{item['service']} on {data.get('host')}")

    result = run_playbook(
        playbooks_dir=ctx.root / "playbooks",
        playbook="failback.yml",
        inventory=ctx.inventory / "hosts.yml",
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "ansible",
        extravars={
            "dr_failback_cleanup": cleanup_map,
            "dr_failback_endpoints": endpoints,
            "dr_failback_endpoint_hosts": sorted(model.hosts),
            "dr_failback_report_hosts": sorted(model.hosts),
            "dr_failback_rpa_hosts": rpa_hosts,
        },
        event_sink=sink,
    )
    undone += rpa.undone(model)
    undone += [f"recovery of {c} undone" for c in changed]
    leftovers += rpa.leftovers(model, rpa_hosts)
    if not result.ok:
        leftovers.append(f"failback playbook failed on {', '.join(result.failed_hosts) or '?'}")
    for name, status in sorted(statuses.items()):
        if status.get("recoveries"):
            leftovers.append(f"{name}: recovery state of {status['recoveries']}")
        if status.get("databases"):
            leftovers.append(f"{name}: databases {status['databases']}")
    missing = sorted(set(model.hosts) - set(statuses))
    if missing:
        leftovers.append(f"no leftover report from {', '.join(missing)}")
    if rules := ctx.isolation.present():
        leftovers.append(f"isolation rules: {rules}")
    if not leftovers:
        state_file(ctx).unlink(missing_ok=True)
    elif load_state(ctx) is None:
        save_state(ctx, {"cleanup_pending": True, "started_at": t0})
    return CleanupResult(
        ok=not leftovers,
        duration_s=time.time() - t0,
        undone=undone,
        leftovers=leftovers,
        started_hosts=started,
    )
