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

from gestic.environments.context import Context
from gestic.model import load_model
from gestic.paths import cache_dir, repo_root
from gestic.tools.ansible.strategy import LINEAR, MITOGEN
from gestic.tools.testinfra import run_verify

GOALS = {"noop_s": 30.0, "first_s": 120.0, "verify_s": 20.0, "mitogen_speedup": 5.0}


def bench_strategy(strategy: str) -> dict[str, Any]:
    root = repo_root()
    with tempfile.TemporaryDirectory(prefix="gestic-bench-converge-") as tmp:
        # the same context `gestic converge` builds (lab access and the lab's secrets), on a
        # lab of its own in a throwaway state dir
        ctx = Context(
            inventory=root / "inventory" / "lab",
            state=Path(tmp),
            cache=cache_dir(),
            lab_name="c" + secrets.token_hex(2),
        )
        out: dict[str, Any] = {"strategy": strategy}
        try:
            ctx.lab_stack.run("up")
            for label in ("first", "noop"):
                start = time.perf_counter()
                result = ctx.run_playbook(strategy=strategy)
                out[f"{label}_s"] = round(time.perf_counter() - start, 2)
                out[f"{label}_changed"] = result.changed
                out[f"{label}_ok"] = result.ok
                print(f"bench: {out}", file=sys.stderr, flush=True)
                if not result.ok:
                    raise SystemExit(
                        f"bench: the {label} converge with {strategy} failed on "
                        f"{', '.join(result.failed_hosts) or '?'}; artifacts: {result.artifacts}"
                    )
            start = time.perf_counter()
            verified = run_verify(
                checks_dir=root / "verify",
                inventory=ctx.inventory,
                model=ctx.model,
                access=ctx.access,
                artifacts_dir=ctx.state / "verify",
                stream=False,
            )
            out["verify_s"] = round(time.perf_counter() - start, 2)
            out["verify_checks"] = verified.tests
            out["verify_ok"] = verified.ok
        finally:
            ctx.lab_stack.run("destroy")
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
