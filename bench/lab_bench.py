"""Lab benchmark: image build (cold/cached), 6-host `up`, no-op `up`, `destroy`, memory per host.

Writes a JSON result (default bench/results.json). Goals (from the foundation issue): a 6-host
lab up in under 15 s from a cached image, a no-op up under 5 s. Run as root: `nox -s bench`.
`--cold` also times a full image build into a throw-away cache dir (minutes).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_file import write_section

from gestic.lab import host as lab_host
from gestic.lab import image as lab_image
from gestic.lab.status import leftovers
from gestic.model import load_model
from gestic.paths import cache_dir, repo_root
from gestic.tools.pulumi.automation import LabStack

GOALS = {"lab_up_s": 15.0, "noop_up_s": 5.0}


def _timed(label: str, fn: Any) -> tuple[float, Any]:
    print(f"bench: {label} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    print(f"bench: {label}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    return elapsed, value


def bench_image(packages: tuple[str, ...], cold: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if cold:
        with tempfile.TemporaryDirectory(prefix="gestic-bench-image-") as tmp:
            result["cold_s"], rootfs = _timed(
                "image build (cold)",
                lambda: lab_image.ensure_image(cache_dir=Path(tmp), packages=packages),
            )
            result["size_bytes"] = sum(
                f.lstat().st_size
                for f in Path(rootfs).rglob("*")
                if f.is_file() and not f.is_symlink()
            )
    lab_image.ensure_image(cache_dir=cache_dir(), packages=packages)
    result["cached_s"], _ = _timed(
        "image build (cached)",
        lambda: lab_image.ensure_image(cache_dir=cache_dir(), packages=packages),
    )
    return result


def bench_lab(state: Path) -> dict[str, Any]:
    model = load_model(repo_root() / "inventory" / "lab")
    stack = LabStack(
        model=model, state_dir=state, cache_dir=cache_dir(), lab_name="b" + secrets.token_hex(2)[:3]
    )
    settings = stack.settings
    out: dict[str, Any] = {"hosts": len(model.hosts)}
    try:
        out["up_s"], up = _timed(f"lab up ({len(model.hosts)} hosts)", lambda: stack.run("up"))
        out["up_changes"] = up.changes
        memory = [
            lab_host.host_memory_bytes(pid)
            for name in model.hosts
            if (pid := lab_host.host_pid(state_dir=settings.state_dir, name=name)) is not None
        ]
        out["memory_per_host_bytes"] = {
            "mean": statistics.mean(memory),
            "min": min(memory),
            "max": max(memory),
            "n": len(memory),
        }
        out["noop_up_s"], noop = _timed("second up (no-op)", lambda: stack.run("up"))
        out["noop_up_changes"] = noop.changes
    finally:
        out["destroy_s"], _ = _timed("destroy", lambda: stack.run("destroy"))
        rest = leftovers(lab=settings.lab, lab_state_dir=settings.state_dir)
        out["left_behind"] = {
            "namespaces": rest.namespaces,
            "mounts": rest.mounts,
            "processes": rest.processes,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--cold", action="store_true", help="also time a cold image build")
    args = parser.parse_args()
    model = load_model(repo_root() / "inventory" / "lab")
    assert model.lab is not None
    packages = tuple(dict.fromkeys((*lab_image.IMAGE_PACKAGES, *model.lab.image.extra_packages)))
    image = bench_image(packages, args.cold)  # first: the lab is timed from a cached image
    with tempfile.TemporaryDirectory(prefix="gestic-bench-state-") as state:
        lab = bench_lab(Path(state))
    results = {
        "image": image,
        "lab": lab,
        "goals": GOALS,
        "goals_met": {
            "lab_up_s": lab["up_s"] < GOALS["lab_up_s"],
            "noop_up_s": lab["noop_up_s"] < GOALS["noop_up_s"],
        },
    }
    write_section(args.output, "lab", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
