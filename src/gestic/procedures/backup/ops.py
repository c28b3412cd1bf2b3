"""Operations on the services' backups through the gestic-dr agent on the hosts (via Ansible).

* `backup_now`: run a service's backup on its host now (what its timer does on schedule);
* `check`: `restic check` of a service's repositories from the maintenance host (a repository
  with flipped bytes fails here with restic's own message);
* `verify_restore`: restore the newest snapshot onto an isolated lab host that is not the
  production one (the service's DR host cut off from the primary site, or the backup host's
  scratch area for services without a DR host), start the service, run its probes from the DR
  plan, then undo it all; the result and restore duration go to the ledger.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gestic.environments.context import Context
from gestic.errors import DrError
from gestic.model.schema import required
from gestic.procedures.dr.drill import probes_for, run_wave
from gestic.procedures.dr.failback import cleanup
from gestic.procedures.dr.plan import Plan
from gestic.tools.ansible.runner import ansible_env, run_isolated

AGENT = "/usr/local/sbin/gestic-dr"


@dataclass(frozen=True, kw_only=True)
class AgentCall:
    host: str
    rc: int
    data: dict[str, Any]
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


def agent(ctx: Context, host: str, *args: str) -> AgentCall:
    """Run `gestic-dr ARGS` on `host` (an Ansible ad-hoc command, as root) and parse its JSON.

    Like every Ansible run of gestic it runs in a spawned interpreter (`run_isolated`): this
    process also drives Pulumi (gRPC threads), and forking it directly can kill the child
    before Ansible starts (seen as "did not run ... (status failed)" with no host event).
    """
    ctx.access.write(ctx.model)
    start = time.monotonic()
    res: dict[str, Any] = {}

    def handle(event: dict[str, Any]) -> bool:
        nonlocal res
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            res = event.get("event_data", {}).get("res", {}) or {}
        return True

    artifacts = ctx.artifacts / "agent"
    artifacts.mkdir(parents=True, exist_ok=True)
    outcome = run_isolated(
        {
            "artifact_dir": str(artifacts),
            "inventory": str(ctx.inventory / "hosts.yml"),
            "host_pattern": host,
            "module": "ansible.builtin.command",
            "cmdline": "--become",  # as the plays do (`become: true`)
            "module_args": " ".join(_quote(a) for a in (AGENT, *args)),
            "envvars": ansible_env(ctx.access),
            "quiet": True,
            "rotate_artifacts": 20,
        },
        handle,
    )
    if not res:
        tail = "\n".join(outcome.get("stdout_tail") or [])
        raise DrError(
            f"gestic-dr {' '.join(args)} did not run on {host} (status {outcome['status']})"
            + (f":\n{tail}" if tail else "")
        )
    if res.get("unreachable"):
        raise DrError(f"{host} is unreachable: {res.get('msg', '')}")
    try:
        data: dict[str, Any] = json.loads(res.get("stdout") or "{}")
    except json.JSONDecodeError:
        data = {"error": (res.get("stderr") or res.get("msg") or "").strip()}
    if not data and res.get("msg"):
        data = {"error": str(res["msg"])}
    return AgentCall(
        host=host, rc=int(res.get("rc", 1)), data=data, duration_s=time.monotonic() - start
    )


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'" if any(c in arg for c in " '\"$") else arg


def _service(ctx: Context, name: str) -> Any:
    if name not in ctx.model.services:
        raise DrError(
            f"unknown service '{name}' (services: {', '.join(sorted(ctx.model.services))})"
        )
    return ctx.model.services[name]


def backup_now(ctx: Context, service: str, *, tag: str | None = None) -> AgentCall:
    """Back the service up now from its first host."""
    host = _service(ctx, service).hosts[0]
    call = agent(ctx, host, "backup", service, *(["--tag", tag] if tag else []))
    if not call.ok:
        raise DrError(f"backup of {service} on {host} failed: {call.data.get('error', call.data)}")
    return call


def maintenance_host(ctx: Context) -> str:
    """The host that maintains the repositories (gestic_backup_maintenance, in the model)."""
    maintenance = required(
        ctx.model,
        ctx.model.backup_maintenance,
        var="gestic_backup_maintenance",
        need="the host that maintains the backup repositories (dr_backup.yml, docs/dr.md)",
        error=DrError,
    )
    return maintenance.host


def check(ctx: Context, service: str, *, read_data: bool = True) -> AgentCall:
    """`restic check` (all data) of the service's repositories, from the maintenance host."""
    _service(ctx, service)
    args = ["check", service] + (["--read-data-subset", "100%"] if read_data else [])
    return agent(ctx, maintenance_host(ctx), *args)


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    service: str
    host: str
    mode: str
    ok: bool
    error: str
    restore_s: float | None
    start_s: float | None
    probe_s: float | None
    snapshot: dict[str, Any]
    probes: list[dict[str, Any]]
    cleaned: bool
    leftovers: list[str]


def verify_restore(ctx: Context, plan: Plan, service: str) -> VerifyResult:
    """Restore the newest snapshot on an isolated non-production host, start, probe, undo."""
    declared = _service(ctx, service)
    model = ctx.model
    if declared.dr_hosts and service in plan.services:
        host, mode = declared.dr_hosts[0], "live"
        units = list(plan.services[service].start)
        probes = probes_for(plan, service)
        endpoints = {e.name: str(model.hosts[host].address) for e in plan.endpoints_of(service)}
    else:
        host, mode, units, endpoints = maintenance_host(ctx), "scratch", [], {}
        probes = [{"type": "manifest", "name": "restored files match the backup"}]
    if host in declared.hosts:
        raise DrError(f"refusing to verify {service} on its production host {host}")
    primary = [s.network for s in model.sites.values() if s.role == "primary"]
    wave = {
        "name": f"verify-{service}",
        "services": [
            {"service": service, "host": host, "mode": mode, "units": units, "probes": probes,
             "from_host": declared.hosts[0]}
        ],
    }  # fmt: skip
    ctx.isolation.isolate({host: model.hosts[host].address}, list(primary))
    try:
        run = run_wave(
            ctx, wave=wave, endpoints=endpoints, endpoint_hosts=[host] if endpoints else [],
            say=lambda _m: None,
        )  # fmt: skip
    finally:
        if mode == "scratch":
            agent(ctx, host, "cleanup", service)
        cleaned = cleanup(ctx, plan)
    data = run.per_service.get(service, {})
    return VerifyResult(
        service=service,
        host=host,
        mode=mode,
        ok=run.ok and cleaned.ok,
        error=run.errors.get(service, "") or "; ".join(run.errors.values()),
        restore_s=data.get("restore_s"),
        start_s=data.get("start_s"),
        probe_s=data.get("probe_s"),
        snapshot=data.get("snapshot", {}) or {},
        probes=list(data.get("probes", [])),
        cleaned=cleaned.ok,
        leftovers=cleaned.leftovers,
    )
