"""DR chaos benchmark: test drills killed at random points, each recovered and checked clean.

Needs a lab that is up and converged (the `dr` step of `nox -s bench` builds one). First one
whole `gestic drill --scenario site-loss --test` is timed (T). Then, `--points` times: a drill
is started in its own process group and the whole group (gestic, ansible-playbook, ssh) is
SIGKILLed at a random moment in [1 s, T]; recovery alternates between `gestic drill failback`
and a rerun of the drill; afterwards a cleanup must find nothing left to undo (no isolation
rule, no stopped host, no recovered service on a DR host, no drill state). Only processes this
script started are killed, by process group id. Figures: faults injected, recovered, lost (a
point whose recovery did not reach a clean state; goal 0), and the time each recovery took.

    python bench/dr_chaos.py --output bench/results.json [--points 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_file import write_section

from gestic.environments.context import Context
from gestic.procedures.backup.ops import backup_now
from gestic.procedures.dr import isolation
from gestic.procedures.dr.failback import cleanup, load_state
from gestic.procedures.dr.plan import PLAN_FILE, load_plan

GESTIC = str(Path(sys.executable).with_name("gestic"))


def drill_command(evidence: Path) -> list[str]:
    return [
        GESTIC, "drill", "--scenario", "site-loss", "--test", "--auto-approve",
        "--evidence-dir", str(evidence),
    ]  # fmt: skip


def run_killed_at(command: list[str], after_s: float, log: Path) -> tuple[bool, float]:
    """Run `command` in a new process group; SIGKILL the group after `after_s` seconds.

    Returns (killed, seconds run): not killed when it ended before the moment came.
    """
    start = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=after_s)
            return False, time.monotonic() - start
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our child's own group: pgid == its pid
            proc.wait()
            return True, time.monotonic() - start


def is_clean(ctx: Context, plan: Any) -> tuple[bool, list[str]]:
    """A cleanup that finds nothing to undo, no isolation rule and no drill state: clean."""
    result = cleanup(ctx, plan)
    problems = [*result.leftovers, *result.undone]
    problems += [f"started stopped host {h}" for h in result.started_hosts]
    if isolation.isolation_rules(ctx.lab_stack.settings.lab):
        problems.append("isolation rules remain")
    if load_state(ctx) is not None:
        problems.append("drill state remains")
    return result.ok and not problems, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress as it goes
    ctx = Context.from_env()
    plan = load_plan(ctx.root / PLAN_FILE, ctx.model)
    chance = random.Random(args.seed)
    for service in plan.restored_services():  # the RPA service has no backup
        backup_now(ctx, service)
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gestic-dr-chaos-") as tmp:
        work = Path(tmp)
        log = work / "drills.log"
        start = time.monotonic()
        whole = subprocess.run(drill_command(work / "evidence"), capture_output=True, check=False)
        full_s = time.monotonic() - start
        if whole.returncode != 0:
            print(whole.stdout.decode(errors="replace")[-3000:])
            raise SystemExit(f"the uninterrupted drill failed (exit {whole.returncode})")
        clean, problems = is_clean(ctx, plan)
        if not clean:
            raise SystemExit(f"the lab is not clean after a whole drill: {problems}")
        print(f"whole drill: {full_s:.1f} s")
        for point in range(args.points):
            at = round(chance.uniform(1.0, full_s), 1)
            killed, ran = run_killed_at(drill_command(work / "evidence"), at, log)
            recovery = "cleanup" if point % 2 == 0 else "rerun"
            t0 = time.monotonic()
            if recovery == "cleanup":
                recovered = cleanup(ctx, plan).ok
            else:
                rerun = subprocess.run(
                    drill_command(work / "evidence"), capture_output=True, check=False
                )
                recovered = rerun.returncode == 0
            recovery_s = time.monotonic() - t0
            clean, problems = is_clean(ctx, plan)
            points.append(
                {
                    "point": point, "kill_at_s": at, "killed": killed, "ran_s": round(ran, 1),
                    "recovery": recovery, "recovery_ok": recovered,
                    "recovery_s": round(recovery_s, 1), "clean": clean, "problems": problems,
                }
            )  # fmt: skip
            print("point:", json.dumps(points[-1]))
    section = {
        "whole_drill_s": round(full_s, 1),
        "seed": args.seed,
        "faults_injected": sum(p["killed"] for p in points),
        "recovered": sum(p["killed"] and p["recovery_ok"] and p["clean"] for p in points),
        "lost": sum(not (p["recovery_ok"] and p["clean"]) for p in points),
        "goal_met": all(p["recovery_ok"] and p["clean"] for p in points),
        "points": points,
    }
    write_section(args.output, "dr_chaos", section)
    print(json.dumps({k: v for k, v in section.items() if k != "points"}, indent=2))
    return 0 if section["goal_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
