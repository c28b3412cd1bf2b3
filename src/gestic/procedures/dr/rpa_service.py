"""The RPA service in DR drills and failback (dr/plan.yml, `kind: rpa`).

The RPA service has no catalogue entry: it runs on the bots hosts (group `bots`, one per site)
and its data is the shared ledger (gestic_rpa.ledger), which the ledger's database service
backs up and the DR site restores in an earlier wave. Recovering the RPA service points the DR
site's scheduler at that copy (rpa_scheduler, tasks_from: failover), restarts it and probes it
(gestic.rpa.failover on the bots host); failback points every bots host's scheduler back at the
ledger's first host and reports which ledger each one uses, so a leftover is seen.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gestic.errors import DrillError
from gestic.model import Model
from gestic.procedures.dr.plan import BOTS_GROUP, Plan

#: The failback's report task (playbooks/roles/rpa_scheduler/tasks/failover.yml).
STATUS_TASK = "Report which ledger the RPA scheduler uses"
#: Its task that restarts a scheduler whose environment it rewrote: it runs (ok, changed) only
#: when the scheduler was moved back (the rewrite itself is `no_log`, its result censored).
SWITCH_TASK = "Restart the RPA scheduler on the ledger of the primary site"


def rpa_ledger(model: Model, targets: dict[str, str]) -> tuple[str, str]:
    """(the DR host the RPA scheduler switches to, or "" to stay on the ledger's first host;
    the host its ledger must then be on, or "" without a shared ledger) for a drill's targets
    (service -> the DR host that recovers it)."""
    ledger = model.rpa.ledger if model.rpa is not None else None
    if ledger is None:
        return "", ""
    if ledger.service in targets:
        return targets[ledger.service], targets[ledger.service]
    return "", model.services[ledger.service].hosts[0]


def check_test_bubble(model: Model, plan: Plan, targets: dict[str, str], bubble: set[str]) -> None:
    """In test mode the DR hosts are cut off from the primary site: the RPA service can be
    tested only with its ledger recovered inside that bubble too."""
    for svc, host in targets.items():
        if plan.services[svc].kind != "rpa":
            continue
        _switch, expect = rpa_ledger(model, targets)
        if expect and expect not in bubble:
            raise DrillError(
                f"test mode isolates {', '.join(sorted(bubble))} from the primary site, so "
                f"'{svc}' on {host} could not reach its ledger on {expect}: a test drill of the "
                "RPA service recovers its ledger too (lose the site, or the ledger's host)"
            )


def failback_hosts(model: Model, plan: Plan) -> list[str]:
    """The bots hosts whose scheduler failback points back (all, when the plan has RPA)."""
    if not any(svc.kind == "rpa" for svc in plan.services.values()):
        return []
    return sorted(h.name for h in model.hosts.values() if BOTS_GROUP in h.groups)


def primary_ledger_host(model: Model) -> str | None:
    """The shared ledger's first host (where every scheduler belongs), or None (SQLite)."""
    ledger = model.rpa.ledger if model.rpa is not None else None
    return None if ledger is None else model.services[ledger.service].hosts[0]


class FailbackReport:
    """What the failback's RPA play said: schedulers moved back, and which ledger each uses."""

    def __init__(self) -> None:
        self.moved: list[str] = []
        self.ledgers: dict[str, str | None] = {}
        self.errors: dict[str, str] = {}

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("event_data", {})
        if event.get("event") != "runner_on_ok":
            return
        res = data.get("res", {}) or {}
        host = str(data.get("host", "?"))
        if data.get("task") == SWITCH_TASK and res.get("changed"):
            self.moved.append(host)
        elif data.get("task") == STATUS_TASK:
            said: dict[str, Any] = {}
            with contextlib.suppress(json.JSONDecodeError):
                said = json.loads(res.get("stdout") or "{}")
            if res.get("rc", 0) != 0 or "error" in said:
                why = said.get("error") or (res.get("stderr") or res.get("msg") or "").strip()
                self.errors[host] = why or f"exited {res.get('rc')}"
            else:
                self.ledgers[host] = said.get("ledger_host")

    def undone(self, model: Model) -> list[str]:
        back = primary_ledger_host(model) or "its own ledger"
        return [f"RPA scheduler on {h} back on {back}" for h in sorted(self.moved)]

    def leftovers(self, model: Model, hosts: list[str]) -> list[str]:
        expected = primary_ledger_host(model)
        found = []
        for host in hosts:
            if host in self.errors:
                found.append(f"{host}: the RPA scheduler's ledger is unknown: {self.errors[host]}")
            elif host not in self.ledgers:
                found.append(f"{host}: no report of the RPA scheduler's ledger")
            elif self.ledgers[host] != expected:
                found.append(
                    f"{host}: the RPA scheduler uses the ledger on "
                    f"{self.ledgers[host] or 'SQLite'}, not on {expected or 'SQLite'}"
                )
        return found
