"""Converge benchmark: first converge, no-op re-converge and verify of the whole lab, with each
Ansible strategy (Mitogen, the default, and ansible-core's stock `linear`).

Each strategy gets a fresh lab (so "first" really is first): converged twice, verified once,
then destroyed. Goals (issue "fast feedback"): no-op converge <= 30 s, first converge <= 120 s,
Mitogen >= 5x stock on the no-op converge, verify <= 20 s. Writes section "converge" of the
results file. Run as root: `nox -s bench -- converge` (`--quick`: Mitogen only).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_file import write_section

from gestic.lab.access import LabAccess
from gestic.model import load_model
from gestic.paths import cache_dir, repo_root
from gestic.tools.ansible.runner import run_playbook
from gestic.tools.ansible.strategy import LINEAR, MITOGEN
from gestic.tools.pulumi.automation import LabStack
from gestic.tools.testinfra import run_verify

GOALS = {"noop_s": 30.0, "first_s": 120.0, "verify_s": 20.0, "mitogen_speedup": 5.0}


def bench_strategy(strategy: str) -> dict[str, Any]:
    root = repo_root()
    inventory = root / "inventory" / "lab"
    model = load_model(inventory)
    with tempfile.TemporaryDirectory(prefix="gestic-bench-converge-") as tmp:
        state = Path(tmp)
        stack = LabStack(
            model=model, state_dir=state, cache_dir=cache_dir(), lab_name="c" + secrets.token_hex(2)
        )
        settings = stack.settings
        access = LabAccess(lab=settings.lab, state_dir=settings.state_dir)
        out: dict[str, Any] = {"strategy": strategy}
        try:
            stack.run("up")
            access.write(model)
            for label in ("first", "noop"):
                start = time.perf_counter()
                result = run_playbook(
                    playbooks_dir=root / "playbooks",
                    playbook="site.yml",
                    inventory=inventory / "hosts.yml",
                    access=access,
                    artifacts_dir=state / "artifacts",
                    strategy=strategy,
                )
                out[f"{label}_s"] = round(time.perf_counter() - start, 2)
                out[f"{label}_changed"] = result.changed
                out[f"{label}_ok"] = result.ok
                print(f"bench: {out}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            verified = run_verify(
                checks_dir=root / "verify",
                inventory=inventory,
                model=model,
                access=access,
                artifacts_dir=state / "verify",
                stream=False,
            )
            out["verify_s"] = round(time.perf_counter() - start, 2)
            out["verify_checks"] = verified.tests
            out["verify_ok"] = verified.ok
        finally:
            stack.run("destroy")
        return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r["strategy"]: r for r in runs}
    fast = by[MITOGEN]
    result: dict[str, Any] = {
        "noop_s": fast["noop_s"],
        "first_s": fast["first_s"],
        "verify_s": fast["verify_s"],
    }
    if LINEAR in by:
        result["mitogen_speedup"] = round(by[LINEAR]["noop_s"] / fast["noop_s"], 2)
        result["mitogen_speedup_first"] = round(by[LINEAR]["first_s"] / fast["first_s"], 2)
    met = {
        key: (result[key] >= goal if key == "mitogen_speedup" else result[key] <= goal)
        for key, goal in GOALS.items()
        if key in result
    }
    return {**result, "goals": GOALS, "goal_met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--quick", action="store_true", help="Only the Mitogen strategy.")
    args = parser.parse_args()
    runs = [bench_strategy(s) for s in ((MITOGEN,) if args.quick else (MITOGEN, LINEAR))]
    write_section(
        args.output,
        "converge",
        {
            "hosts": len(load_model(repo_root() / "inventory" / "lab").hosts),
            "runs": runs,
            **summary(runs),
        },
    )


if __name__ == "__main__":
    main()
