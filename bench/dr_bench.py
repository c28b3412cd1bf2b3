"""DR benchmark: backup and restore throughput vs a plain copy, and drill RTO vs irreducible time.

Needs a lab that is up and converged (site.yml with the backup play). On the backup host it
makes `--mb` MiB of incompressible data, then times, on the same disk: a plain copy (cp -a),
a restic backup into a local repository and a restic restore of it; the ratios say what
encryption and deduplication cost. Then it runs a --test site-loss drill and reports, per
service, the achieved RTO against its irreducible time (restore + service start + probes
along its dependency chain); the goal is an overhead ratio of at most 1.2 for every service.

    python bench/dr_bench.py --output bench/results.json [--mb 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import ansible_runner
from results_file import write_section

from gestic.environments.context import Context
from gestic.procedures.backup.ops import backup_now
from gestic.procedures.dr.drill import run_drill
from gestic.procedures.dr.plan import PLAN_FILE, load_plan
from gestic.tools.ansible.runner import ansible_env

SCRIPT = r"""
set -eu
W=/var/tmp/gestic-bench; rm -rf "$W"; mkdir -p "$W/src"
head -c {mb}M /dev/urandom > "$W/src/data.bin"; sync
t() {{
  s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
  echo "$e $s" | awk '{{print $1 - $2}}'
}}
export RESTIC_PASSWORD=bench-only
COPY=$(t cp -a "$W/src" "$W/copy")
restic init --repo "$W/repo" >/dev/null 2>&1
BACKUP=$(t restic backup --repo "$W/repo" "$W/src")
RESTORE=$(t restic restore latest --repo "$W/repo" --target "$W/restored")
rm -rf "$W"
echo "{{\"copy_s\": $COPY, \"backup_s\": $BACKUP, \"restore_s\": $RESTORE}}"
"""


def _throughput(ctx: Context, host: str, mb: int) -> dict[str, Any]:
    ctx.access.write(ctx.model)
    with tempfile.TemporaryDirectory() as private:
        result = ansible_runner.run(
            private_data_dir=private,
            inventory=str(ctx.inventory / "hosts.yml"),
            host_pattern=host,
            module="ansible.builtin.shell",
            module_args=SCRIPT.format(mb=mb),
            cmdline="--become",
            envvars=ansible_env(ctx.access),
            quiet=True,
        )
        out = ""
        for event in result.events:
            if event.get("event") == "runner_on_ok":
                out = event["event_data"]["res"]["stdout"]
    if not out:
        raise SystemExit(f"throughput run failed on {host} (status {result.status})")
    times = {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    return {
        "host": host,
        "mib": mb,
        **times,
        "copy_mib_s": mb / times["copy_s"],
        "backup_mib_s": mb / times["backup_s"],
        "restore_mib_s": mb / times["restore_s"],
        "backup_vs_copy": times["backup_s"] / times["copy_s"],
        "restore_vs_copy": times["restore_s"] / times["copy_s"],
    }


GOAL_RATIO = 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--mb", type=int, default=256)
    args = parser.parse_args()
    ctx = Context.from_env()
    plan = load_plan(ctx.root / PLAN_FILE, ctx.model)
    throughput = _throughput(ctx, "bkp-a1", args.mb)
    for service in plan.restored_services():  # the RPA service has no backup
        backup_now(ctx, service)
    drill = run_drill(ctx, plan, scenario="site-loss", test=True, approve=lambda _s: True)
    services = [
        {
            "service": s.service,
            "rto_s": s.rto_s,
            "irreducible_s": s.irreducible_s,
            "overhead_ratio": (s.rto_s / s.irreducible_s) if s.rto_s and s.irreducible_s else None,
            "rpo_s": s.rpo_s,
        }
        for s in drill.services
    ]
    ratios = [s["overhead_ratio"] for s in services if s["overhead_ratio"] is not None]
    worst = max(ratios) if ratios else None
    section = {
        "throughput": throughput,
        "drill": {"ok": drill.ok, "services": services, "goal_overhead_ratio": GOAL_RATIO,
                  "max_overhead_ratio": worst,
                  "goal_met": worst is not None and worst <= GOAL_RATIO},
    }  # fmt: skip
    write_section(args.output, "dr", section)
    print(json.dumps(section, indent=2))


if __name__ == "__main__":
    main()
