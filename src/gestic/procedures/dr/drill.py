"""DR drills: declare a disaster, recover wave by wave from backups, measure RTO and RPO.

`run_drill` follows dr/plan.yml: it declares the disaster (stops the lost hosts in the lab,
or in test mode leaves them running and isolates the DR hosts, as SRM's test failover does),
then runs playbooks/dr-drill.yml (endpoint switch, restore from the newest backup, start,
probes) once per batch of waves: the waves whose `after` waves are all done recover together,
so a service waits only for what it depends on. It measures, per service:

* achieved RTO = when its last probe passed - when the disaster was declared;
* achieved RPO = when the disaster was declared - the newest RPO marker in the data actually
  restored (a row or file the hosts write every few seconds, restored with the backup).

Both are compared with the plan's targets. `cleanup` (failback,
`gestic.procedures.dr.failback`) undoes everything a drill did and proves it: hosts back up,
recoveries undone, endpoints on the primary site, no isolation rule, no drill state; rerunning
it, or a drill after an interrupted one, converges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gestic.environments.context import Context
from gestic.errors import DrillError
from gestic.lab import host as lab_host
from gestic.procedures.dr.failback import CleanupResult, Say, cleanup, load_state, save_state
from gestic.procedures.dr.plan import Plan, Step, service_hosts
from gestic.procedures.dr.rpa_service import check_test_bubble, rpa_ledger
from gestic.tools.ansible.runner import run_playbook

Scenario = Literal["site-loss", "host-loss"]
Approver = Callable[[Step], bool]

RECOVER_TASK = "Restore the wave's services from their newest backup, start and probe them"


@dataclass(kw_only=True)
class ServiceResult:
    service: str
    wave: str
    host: str
    status: str = "pending"  # ok | failed | skipped
    error: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)
    restore_s: float | None = None
    start_s: float | None = None
    probe_s: float | None = None
    started_at: float | None = None
    ready_at: float | None = None
    marker_at: float | None = None
    rto_s: float | None = None
    rpo_s: float | None = None
    rto_target_s: float = 0.0
    rpo_target_s: float = 0.0
    irreducible_s: float | None = None
    bytes: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rto_ok(self) -> bool:
        return self.rto_s is not None and self.rto_s <= self.rto_target_s

    @property
    def rpo_ok(self) -> bool:
        return self.rpo_s is not None and self.rpo_s <= self.rpo_target_s

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.rto_ok and self.rpo_ok


@dataclass(kw_only=True)
class WaveResult:
    name: str
    title: str
    started_at: float
    finished_at: float
    status: str
    error: str = ""


@dataclass(kw_only=True)
class DrillResult:
    scenario: str
    test: bool
    lost_hosts: list[str]
    declared_at: float
    finished_at: float
    services: list[ServiceResult]
    waves: list[WaveResult]
    steps: list[dict[str, Any]]
    plan: str
    environment: str
    lab: str
    cleanup: CleanupResult | None = None
    failure: str = ""

    @property
    def ok(self) -> bool:
        cleaned = self.cleanup is None or self.cleanup.ok
        return not self.failure and cleaned and all(s.ok for s in self.services)

    def breaches(self) -> list[str]:
        found = []
        for s in self.services:
            if s.status != "ok":
                found.append(f"wave '{s.wave}', service '{s.service}' on {s.host}: {s.error}")
                continue
            if not s.rto_ok:
                found.append(
                    f"{s.service}: RTO {_fmt(s.rto_s)} exceeds the target {_fmt(s.rto_target_s)}"
                )
            if not s.rpo_ok:
                what = "no RPO marker in the restored data" if s.rpo_s is None else _fmt(s.rpo_s)
                found.append(f"{s.service}: RPO {what} exceeds the target {_fmt(s.rpo_target_s)}")
        if self.cleanup is not None and not self.cleanup.ok:
            found.append("cleanup left: " + "; ".join(self.cleanup.leftovers))
        return found

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["breaches"] = self.breaches()
        for svc, raw in zip(self.services, data["services"], strict=True):
            raw.update(rto_ok=svc.rto_ok, rpo_ok=svc.rpo_ok, ok=svc.ok)
        return data


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --- scope ------------------------------------------------------------------------------------


def lost_hosts(ctx: Context, scenario: Scenario, host: str | None) -> list[str]:
    model = ctx.model
    if scenario == "host-loss":
        if host is None:
            raise DrillError("--scenario host-loss needs --host (the host that is lost)")
        if host not in model.hosts:
            raise DrillError(f"unknown host '{host}' (hosts: {', '.join(sorted(model.hosts))})")
        return [host]
    primary = [s.name for s in model.sites.values() if s.role == "primary"]
    return sorted(h.name for h in model.hosts.values() if h.site in primary)


def scope(ctx: Context, plan: Plan, lost: list[str]) -> dict[str, str]:
    """Planned services to recover (in order) -> the DR host that recovers each."""
    model = ctx.model
    hosts = {s: service_hosts(model, plan.services[s]) for s in plan.ordered_services()}
    hit = [s for s in plan.ordered_services() if set(hosts[s][0]) & set(lost)]
    if not hit:
        raise DrillError(f"no planned service runs on {', '.join(lost)}: nothing to recover")
    chosen = plan.dependency_closure(hit)
    targets = {}
    for svc in chosen:
        dr_hosts = [h for h in hosts[svc][1] if h not in lost]
        if not dr_hosts:
            raise DrillError(f"service '{svc}' has no DR host outside the lost hosts {lost}")
        targets[svc] = dr_hosts[0]
    return targets


def probes_for(plan: Plan, service: str) -> list[dict[str, Any]]:
    return [p.model_dump(exclude_none=True) for p in plan.services[service].probes]


def _service_spec(ctx: Context, plan: Plan, svc: str, host: str, targets: dict[str, str]) -> Any:
    planned = plan.services[svc]
    spec: dict[str, Any] = {
        "service": svc,
        "host": host,
        "kind": planned.kind,
        "mode": "live",
        "units": list(planned.start),
        "probes": probes_for(plan, svc),
        "from_host": service_hosts(ctx.model, planned)[0][0],
    }
    if planned.kind == "rpa":
        spec["ledger_host"], spec["expect_host"] = rpa_ledger(ctx.model, targets)
    return spec


def _rpa_rpo(ctx: Context, res: ServiceResult, results: dict[str, ServiceResult]) -> None:
    """The RPA service's data is the shared ledger: its RPO is that of the ledger's restore
    (the ledger's dump is in the same snapshot as the RPO marker of its service), or none
    lost when the ledger's host was not lost (the scheduler stays on it)."""
    ledger = ctx.model.rpa.ledger if ctx.model.rpa is not None else None
    if res.status != "ok" or ledger is None:
        return
    source = results.get(ledger.service)
    if source is None:
        res.marker_at, res.rpo_s = None, 0.0
    else:  # the snapshot its data came back from
        res.marker_at, res.rpo_s, res.snapshot = source.marker_at, source.rpo_s, source.snapshot


# --- running one wave -------------------------------------------------------------------------


@dataclass(kw_only=True)
class WaveRun:
    ok: bool
    per_service: dict[str, dict[str, Any]]
    errors: dict[str, str]
    unreachable: list[str]


def run_wave(
    ctx: Context,
    *,
    wave: dict[str, Any],
    endpoints: dict[str, str],
    endpoint_hosts: list[str],
    say: Say,
) -> WaveRun:
    """Run playbooks/dr-drill.yml for one wave; read each service's result from the events."""
    per_service: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    unreachable: list[str] = []
    by_host = {s["host"]: s for s in wave["services"]}

    def sink(event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        res = data.get("res", {}) or {}
        if kind == "runner_on_unreachable":
            host = data.get("host", "?")
            unreachable.append(host)
            for svc in wave["services"]:
                if svc["host"] == host:
                    errors[svc["service"]] = f"host {host} unreachable: {res.get('msg', '')}"
            if host not in by_host:
                errors.setdefault(f"endpoint@{host}", f"host {host} unreachable")
            return
        if data.get("task") != RECOVER_TASK or kind not in (
            "runner_item_on_ok",
            "runner_item_on_failed",
        ):
            return
        item = res.get("item", {})
        name = item.get("service", "?")
        try:
            parsed: dict[str, Any] = json.loads(res.get("stdout") or "{}")
        except json.JSONDecodeError:
            parsed = {}
        per_service[name] = parsed
        if kind == "runner_item_on_failed":
            failed = [p for p in parsed.get("probes", []) if not p.get("ok")]
            detail = parsed.get("error") or "; ".join(
                f"probe '{p['name']}': {p['detail']}" for p in failed
            )
            errors[name] = detail or (res.get("stderr") or res.get("msg") or "failed").strip()

    recover_hosts = sorted(by_host)
    result = run_playbook(
        playbooks_dir=ctx.root / "playbooks",
        playbook="dr-drill.yml",
        inventory=ctx.inventory / "hosts.yml",
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "ansible",
        extravars={
            "dr_drill_wave": wave,
            "dr_drill_recover_hosts": recover_hosts,
            "dr_drill_endpoints": endpoints,
            "dr_drill_endpoint_hosts": endpoint_hosts,
        },
        event_sink=sink,
        on_event=lambda line: say(line) if "FAILED" in line or "UNREACHABLE" in line else None,
    )
    for svc in wave["services"]:
        if svc["service"] not in per_service and svc["service"] not in errors:
            errors[svc["service"]] = f"no result from {svc['host']} (ansible rc {result.rc})"
    return WaveRun(
        ok=result.ok and not errors, per_service=per_service, errors=errors, unreachable=unreachable
    )


# --- the drill --------------------------------------------------------------------------------


def run_drill(
    ctx: Context,
    plan: Plan,
    *,
    scenario: Scenario,
    host: str | None = None,
    test: bool = False,
    approve: Approver,
    say: Say = lambda _m: None,
) -> DrillResult:
    """Run one drill and return its measured result (cleanup included in test mode)."""
    if load_state(ctx) is not None:
        say("a previous drill left state behind: cleaning it up first")
        previous = cleanup(ctx, plan, say=say)
        if not previous.ok:
            raise DrillError(
                "the previous drill could not be cleaned up: " + "; ".join(previous.leftovers)
            )
    lost = lost_hosts(ctx, scenario, host)
    targets = scope(ctx, plan, lost)
    if test:  # before anyone is asked to confirm anything
        check_test_bubble(ctx.model, plan, targets, set(targets.values()))
    model = ctx.model
    steps: list[dict[str, Any]] = []

    def confirm(step: Step) -> None:
        t = time.time()
        ok = approve(step)
        steps.append(
            {"id": step.id, "text": step.text, "responsible": step.responsible,
             "approved": ok, "auto": step.auto_approve_in_drill, "at": t,
             "waited_s": time.time() - t}
        )  # fmt: skip
        if not ok:
            raise DrillError(f"step '{step.id}' was not approved: {step.text}")

    if not test and not ctx.is_lab:
        raise DrillError(
            f"a real drill stops the lost hosts; gestic does that only in a lab, and "
            f"'{ctx.target}' is not one: run `--test` (recovery in isolation), or fail over "
            "by the DR plan's steps"
        )
    for step in plan.steps_at("declare"):
        confirm(step)
    dr_hosts = sorted(set(targets.values()))
    save_state(
        ctx,
        {"scenario": scenario, "test": test, "lost": lost, "targets": targets,
         "isolated": dr_hosts if test else [], "stopped": [] if test else lost,
         "started_at": time.time()},
    )  # fmt: skip
    declared_at = time.time()
    if test:
        others = [s.network for s in model.sites.values() if s.role == "primary"]
        ctx.isolation.isolate({h: model.hosts[h].address for h in dr_hosts}, list(others))
        say(f"test mode: {', '.join(lost)} keep running; {', '.join(dr_hosts)} isolated")
    else:
        for name in lost:
            lab_host.stop_host(state_dir=ctx.lab_stack.settings.state_dir, name=name)
        say(f"disaster declared: {', '.join(lost)} stopped")
    results = {
        svc: ServiceResult(
            service=svc,
            wave=plan.wave_of(svc).name,
            host=dr_host,
            rto_target_s=plan.services[svc].rto_minutes * 60.0,
            rpo_target_s=plan.services[svc].rpo_minutes * 60.0,
        )
        for svc, dr_host in targets.items()
    }
    # where endpoint names switch: test mode only inside the isolated bubble
    alive = [h for h in sorted(model.hosts) if h not in lost]
    endpoint_hosts = dr_hosts if test else alive
    waves: list[WaveResult] = []
    failure = ""
    # Waves whose `after` waves are all done run together, in one playbook run: the plan
    # orders by dependency, not by list position (a service waits only for what it needs).
    for ready in plan.wave_batches():
        members = {w.name: [s for s in w.services if s in targets] for w in ready}
        batch = [w for w in ready if members[w.name]]
        if not batch:
            continue
        everyone = [s for w in batch for s in members[w.name]]
        if failure:
            for svc in everyone:
                results[svc].status = "skipped"
                results[svc].error = f"not attempted: {failure}"
            continue
        for wave in batch:
            for step in plan.steps_at("before-wave", wave.name):
                confirm(step)
        endpoints = {
            e.name: str(model.hosts[targets[svc]].address)
            for svc in everyone
            for e in plan.endpoints_of(svc)
        }
        if endpoints:
            for step in plan.steps_at("before-switch"):
                if step.id not in {s["id"] for s in steps}:
                    confirm(step)
        names = " + ".join(w.name for w in batch)
        spec = {
            "name": names,
            "services": [_service_spec(ctx, plan, svc, targets[svc], targets) for svc in everyone],
        }
        say(f"wave {names}: recovering {', '.join(everyone)}")
        started = time.time()
        run = run_wave(
            ctx,
            wave=spec,
            endpoints=endpoints,
            endpoint_hosts=endpoint_hosts if endpoints else [],
            say=say,
        )
        finished = time.time()
        for svc in everyone:
            _fill(results[svc], run.per_service.get(svc, {}), run.errors.get(svc), declared_at)
            if plan.services[svc].kind == "rpa":
                _rpa_rpo(ctx, results[svc], results)
        stray = [e for k, e in run.errors.items() if k not in everyone]
        own = {
            w.name: [f"{s}: {run.errors[s]}" for s in members[w.name] if s in run.errors]
            for w in batch
        }
        # a failure no service of the run claims (a host unreachable before any result) is
        # every wave's of the run
        blamed = [w.name for w in batch if own[w.name]] or [w.name for w in batch]
        failed: list[str] = []
        for wave in batch:
            wave_failed = not run.ok and wave.name in blamed
            error = "; ".join([*own[wave.name], *stray]) if wave_failed else ""
            if wave_failed:
                failed.append(f"wave '{wave.name}' failed: {error or 'see the Ansible output'}")
            waves.append(
                WaveResult(
                    name=wave.name,
                    title=wave.title,
                    started_at=started,
                    finished_at=finished,
                    status="failed" if wave_failed else "ok",
                    error=error,
                )
            )
        if failed:
            failure = "; ".join(failed)
            say(failure)
    if not failure:
        for step in plan.steps_at("after-probes"):
            confirm(step)
    for res in results.values():
        res.irreducible_s = _irreducible(plan, results, res.service)
    result = DrillResult(
        scenario=scenario,
        test=test,
        lost_hosts=lost,
        declared_at=declared_at,
        finished_at=time.time(),
        services=list(results.values()),
        waves=waves,
        steps=steps,
        plan=plan.source,
        environment=model.environment,
        lab=ctx.target,
        failure=failure,
    )
    if test:
        say("test mode: cleaning up")
        result.cleanup = cleanup(ctx, plan, say=say)
    return result


def _fill(res: ServiceResult, data: dict[str, Any], error: str | None, declared_at: float) -> None:
    res.snapshot = data.get("snapshot", {}) or {}
    res.restore_s = data.get("restore_s")
    res.start_s = data.get("start_s")
    res.probe_s = data.get("probe_s")
    res.started_at = data.get("started_at")
    res.bytes = int(data.get("bytes") or 0)
    res.probes = list(data.get("probes", []))
    res.marker_at = data.get("marker")
    if error:
        res.status, res.error = "failed", error
        return
    res.status = "ok"
    passed = [p["passed_at"] for p in res.probes if p.get("passed_at")]
    res.ready_at = max(passed) if passed else data.get("finished_at")
    res.rto_s = None if res.ready_at is None else res.ready_at - declared_at
    res.rpo_s = None if res.marker_at is None else max(0.0, declared_at - res.marker_at)


def _irreducible(plan: Plan, results: dict[str, ServiceResult], service: str) -> float | None:
    """Restore + start + probe along the service's dependency chain (what no tool can skip)."""
    total = 0.0
    for name in plan.critical_path(service):
        res = results.get(name)
        if res is None:
            continue
        parts = (res.restore_s, res.start_s, res.probe_s)
        if any(p is None for p in parts):
            return None
        total += sum(p for p in parts if p is not None)
    return total
