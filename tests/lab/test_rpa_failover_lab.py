"""Two bots hosts, one per site, work the same queues while robots and whole hosts are killed.

The bank delivers one payments file over SFTP. The bots hosts of both sites (svc-p1 and web-a1)
run conciliacion-pagos on it at once, as their schedulers do, against the shared queue on db-p1;
a killer meanwhile SIGKILLs robots on both hosts, cuts web-a1's power (the whole host, booted
again afterwards) and SIGKILLs svc-p1's whole run with its robots (svc-p1 also carries the
transfer, logs and monitoring services the other tests measure, so its power stays on). Each
host keeps starting runs until the queue holds nothing outstanding, as a restarted scheduler
would. Every payment must then have been worked exactly once: one item per payment, one final
outcome per item, one result per payment for the report.
"""

from __future__ import annotations

import json
import random
import secrets
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gestic.environments.context import Context
from gestic.lab import host as lab_host
from gestic.procedures.dr.failback import start_stopped_hosts

from .labkit import Lab, authorized_partner_key, on_host, run_on, sftp_as
from .rpakit import AS_SCHEDULER, BANK, BOTS_HOST, DR_BOTS_HOST, INBOX, lab_loans, ledger_query

PAYMENTS = 2400  # about a minute's work for both hosts' robots
UNKNOWN_LOAN = "ICX-1999-999999"
DEADLINE_S = 900.0
#: Robot kills, power cuts of web-a1, and kills of svc-p1's whole run, in a shuffled order.
FAULTS = ["robot"] * 6 + ["power-cut"] * 2 + ["run-kill"]
RUN = f"COLUMNS=250 {AS_SCHEDULER} rpa run conciliacion-pagos --from-inbox --workers 2"
#: The robots that reconcile payments (each holds one payment at a time). The producer is
#: left alone: it is one robot holding the one file, so a few kills in a row would use up the
#: file's attempts (a dead-lettered file, as designed, but then there is nothing to work).
ROBOTS = "pgrep -u gestic-rpa -f -- '-m robot .*consumidor.robot' || true"
RUNS = "pgrep -u gestic-rpa -f -- '-m gestic rpa run' || true"


@dataclass
class Faults:
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    boots: list[float] = field(default_factory=list)  # seconds to boot web-a1 again


def _outstanding(ctx: Context, since: str) -> int:
    """Items of this test's runs that are not final yet (pending, claimed, or drafts)."""
    return int(
        ledger_query(
            ctx,
            "SELECT count(*) FROM gestic_rpa_items WHERE bot = 'conciliacion-pagos' "
            f"AND created_at >= '{since}' AND state IN ('pending', 'in_progress')",
        ).strip()
    )


def _pids(ctx: Context, host: str, command: str) -> list[int]:
    proc = run_on(ctx, host, f"sudo sh -c {shlex.quote(command)}", timeout=30)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def _worker(
    ctx: Context, host: str, until: float, drained: threading.Event, log: list[str]
) -> None:
    """Start runs on `host` until the queue is drained: a run cut short (its host or its
    process killed) is followed by another, as the host's scheduler would after a restart."""
    while not drained.is_set() and time.monotonic() < until:
        proc = run_on(ctx, host, f"sudo sh -c {shlex.quote(RUN)}", timeout=until - time.monotonic())
        log.append(f"{host}: run exited {proc.returncode}: {proc.stdout[-300:]}")
        if proc.returncode != 0:
            time.sleep(3)  # the host may be booting again


def _payments(ctx: Context, since: str) -> int:
    return int(
        ledger_query(
            ctx,
            "SELECT count(*) FROM gestic_rpa_items WHERE queue = 'conciliacion-pagos.pagos' "
            f"AND created_at >= '{since}'",
        )
    )


def _inject(ctx: Context, faults: Faults, drained: threading.Event, seed: int, since: str) -> None:
    """Once the file is split into payments, apply every fault of FAULTS, in a random order,
    each as soon as it has a target."""
    while _payments(ctx, since) < PAYMENTS and not drained.wait(1.0):
        pass
    chance = random.Random(seed)
    remaining = list(FAULTS)
    state_dir = ctx.lab_stack.settings.state_dir
    booting: threading.Thread | None = None
    deadline = time.monotonic() + DEADLINE_S / 2
    while remaining and not drained.wait(chance.uniform(1.0, 3.0)):
        if time.monotonic() > deadline:
            faults.problems.append(f"no target found for {remaining}")
            return
        if booting is not None and not booting.is_alive():
            booting = None
        hosts = [BOTS_HOST] if booting else [BOTS_HOST, DR_BOTS_HOST]
        robots = {host: _pids(ctx, host, ROBOTS) for host in hosts}
        fault = chance.choice(remaining)
        if fault == "robot" and (busy := [h for h in hosts if robots[h]]):
            host = chance.choice(busy)
            pid = chance.choice(robots[host])
            run_on(ctx, host, f"sudo kill -KILL {pid}", timeout=30)
            faults.done.append(f"robot {pid} on {host}")
        elif fault == "run-kill" and robots[BOTS_HOST]:
            # the run and its robots at once, as a crash of the process would
            pids = " ".join(str(p) for p in _pids(ctx, BOTS_HOST, RUNS) + robots[BOTS_HOST])
            run_on(ctx, BOTS_HOST, f"sudo kill -KILL {pids}", timeout=30)
            faults.done.append(f"run on {BOTS_HOST} ({len(robots[BOTS_HOST])} robots)")
        elif fault == "power-cut" and booting is None and robots.get(DR_BOTS_HOST):
            if lab_host.power_cut(state_dir=state_dir, name=DR_BOTS_HOST):
                faults.done.append(f"power cut of {DR_BOTS_HOST}")
            off = chance.uniform(2.0, 5.0)
            booting = threading.Thread(target=_boot, args=(ctx, faults, off), daemon=True)
            booting.start()
        else:
            continue  # no target for it now: another fault, or this one later
        remaining.remove(fault)
    if booting is not None:
        booting.join()


def _boot(ctx: Context, faults: Faults, after_s: float) -> None:
    """Boot web-a1 again `after_s` after its power cut (meanwhile the other faults go on)."""
    time.sleep(after_s)
    started = time.monotonic()
    booted, problems = start_stopped_hosts(ctx)
    faults.problems += problems
    if DR_BOTS_HOST not in booted:
        faults.problems.append(f"{DR_BOTS_HOST} did not boot again: {booted}")
    faults.boots.append(time.monotonic() - started)


def test_each_payment_is_worked_once_while_robots_and_bots_hosts_are_killed(
    lab: Lab, tmp_path: Path
) -> None:
    ctx = lab.ctx
    loans = lab_loans(ctx)
    current = loans["current"]
    since = ledger_query(ctx, "SELECT now()::text").strip()  # with its offset
    batch = secrets.token_hex(3)  # new content: the same file again would not be taken
    name = f"pagos-caos-{batch}.csv"
    rows = ["referencia,fecha,documento,credito,valor,banco"]
    for n in range(PAYMENTS):  # every fifth one names no loan: a BUSINESS outcome
        loan = UNKNOWN_LOAN if n % 5 == 4 else current["credito"]
        rows.append(f"{batch}-{n:04d},2026-12-01,{current['documento']},{loan},1000,Banco")
    (tmp_path / name).write_text("\n".join(rows) + "\n")
    with authorized_partner_key(ctx, BANK, tmp_path) as key:
        put = sftp_as(ctx, BOTS_HOST, BANK, key, f"put {tmp_path / name} /entrada/{name}\n")
        assert put.returncode == 0, put.stderr
    on_host(ctx, BOTS_HOST, f"touch -d '-2 min' {INBOX}/entrada/{name}")  # settled

    until = time.monotonic() + DEADLINE_S
    drained = threading.Event()
    log: list[str] = []
    faults = Faults()
    workers = [
        threading.Thread(target=_worker, args=(ctx, host, until, drained, log), daemon=True)
        for host in (BOTS_HOST, DR_BOTS_HOST)
    ]
    killer = threading.Thread(
        target=_inject, args=(ctx, faults, drained, PAYMENTS, since), daemon=True
    )
    started = time.monotonic()
    for thread in (*workers, killer):
        thread.start()
    try:
        while time.monotonic() < until:
            time.sleep(5)
            if _payments(ctx, since) >= PAYMENTS and _outstanding(ctx, since) == 0:
                break
    finally:
        drained.set()
        killer.join(timeout=120)
        for thread in workers:
            thread.join(timeout=600)
        _, problems = start_stopped_hosts(ctx)  # web-a1 is up at the end, whatever happened
    elapsed = time.monotonic() - started
    assert not problems, problems
    assert _outstanding(ctx, since) == 0, f"not drained in {elapsed:.0f} s:\n" + "\n".join(log)
    # the faults were really injected: every one of the plan
    assert not faults.problems, faults.problems
    assert sorted(f.split()[0] for f in faults.done) == sorted(
        {"robot": "robot", "power-cut": "power", "run-kill": "run"}[f] for f in FAULTS
    ), faults.done

    items = json.loads(
        ledger_query(
            ctx,
            "SELECT coalesce(json_agg(json_build_object('id', i.id, 'queue', i.queue, "
            "'state', i.state, 'code', i.exception_code, 'ref', i.payload->>'referencia', "
            "'outcomes', (SELECT json_agg(a.outcome ORDER BY a.attempt) FROM gestic_rpa_attempts "
            "AS a WHERE a.item_id = i.id), 'workers', (SELECT json_agg(a.worker) FROM "
            "gestic_rpa_attempts AS a WHERE a.item_id = i.id))), '[]') FROM gestic_rpa_items AS i "
            f"WHERE i.bot = 'conciliacion-pagos' AND i.created_at >= '{since}'",
        )
    )
    files = [i for i in items if i["queue"] == "conciliacion-pagos.archivos"]
    payments = [i for i in items if i["queue"] == "conciliacion-pagos.pagos"]
    results = [i for i in items if i["queue"] == "conciliacion-pagos.resultados"]
    assert len(files) == 1, files  # the file was taken once, by one of the two hosts
    refs = sorted(str(p["ref"]) for p in payments)
    assert refs == [f"{batch}-{n:04d}" for n in range(PAYMENTS)]  # one item each, none twice
    for item in payments:  # one final outcome each, the last attempt's
        outcomes = item["outcomes"] or []
        final = [o for o in outcomes if o != "abandoned"]
        assert len(final) == 1, item
        assert outcomes[-1] == final[0], item
        unknown = item["ref"][-1] in "49"  # n % 5 == 4
        expected = ("failed", "CREDITO_NO_ENCONTRADO") if unknown else ("done", None)
        assert (item["state"], item["code"]) == expected, item
    # one result per payment for the report (a killed robot's outputs were discarded)
    assert len(results) == PAYMENTS, len(results)
    workers_seen = {w.split(":")[0] for i in payments for w in (i["workers"] or []) if w}
    assert workers_seen == {BOTS_HOST, DR_BOTS_HOST}, workers_seen  # both sites did the work
    print(f"drained in {elapsed:.0f} s; faults {faults.done}; boots took {faults.boots} s")
