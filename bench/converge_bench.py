"""Converge benchmark: first converge and idempotent re-converge of the whole lab, with SSH
pipelining and connection multiplexing (ControlPersist) each on and off.

Each configuration gets a fresh lab (so "first" really is first), converged twice, then
destroyed. Goal (issue: configuration of the datacenter): the re-converge takes under half the
first. Writes section "converge" of the results file. Run as root: `nox -s bench`.
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

from gestic.converge import ConvergeResult, run_playbook
from gestic.infra import LabStack
from gestic.lab.access import LabAccess
from gestic.model import load_model
from gestic.paths import cache_dir, repo_root

ALL_CONFIGS = [
    {"pipelining": True, "multiplex": True},
    {"pipelining": True, "multiplex": False},
    {"pipelining": False, "multiplex": True},
    {"pipelining": False, "multiplex": False},
]
DEFAULT_CONFIGS = [ALL_CONFIGS[0], ALL_CONFIGS[-1]]
"""Both on and both off by default: each configuration costs a fresh lab and two converges."""


def _converge(access: LabAccess, state: Path, pipelining: bool) -> ConvergeResult:
    root = repo_root()
    return run_playbook(
        playbooks_dir=root / "playbooks",
        playbook="site.yml",
        inventory=root / "inventory" / "lab" / "hosts.yml",
        access=access,
        artifacts_dir=state / "artifacts",
        pipelining=pipelining,
    )


def bench_config(pipelining: bool, multiplex: bool) -> dict[str, Any]:
    model = load_model(repo_root() / "inventory" / "lab")
    with tempfile.TemporaryDirectory(prefix="gestic-bench-converge-") as tmp:
        state = Path(tmp)
        stack = LabStack(
            model=model, state_dir=state, cache_dir=cache_dir(), lab_name="c" + secrets.token_hex(2)
        )
        settings = stack.settings
        access = LabAccess(lab=settings.lab, state_dir=settings.state_dir, multiplex=multiplex)
        out: dict[str, Any] = {"pipelining": pipelining, "multiplex": multiplex}
        try:
            stack.run("up")
            access.write(model)
            for label in ("first", "second"):
                start = time.perf_counter()
                result = _converge(access, state, pipelining)
                out[f"{label}_s"] = round(time.perf_counter() - start, 2)
                out[f"{label}_changed"] = result.changed
                out[f"{label}_ok"] = result.ok
                print(f"bench: {out}", file=sys.stderr, flush=True)
        finally:
            stack.run("destroy")
        out["ratio_second_to_first"] = round(out["second_s"] / out["first_s"], 3)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    parser.add_argument(
        "--all-configs", action="store_true", help="Also pipelining and multiplexing one at a time."
    )
    parser.add_argument(
        "--quick", action="store_true", help="Only pipelining and multiplexing both on."
    )
    args = parser.parse_args()
    configs = ALL_CONFIGS if args.all_configs else DEFAULT_CONFIGS
    runs = [bench_config(**c) for c in (configs[:1] if args.quick else configs)]
    write_section(
        args.output,
        "converge",
        {
            "hosts": len(load_model(repo_root() / "inventory" / "lab").hosts),
            "runs": runs,
            "goal": "second/first < 0.5",
            "goal_met": all(r["ratio_second_to_first"] < 0.5 for r in runs),
        },
    )


if __name__ == "__main__":
    main()
