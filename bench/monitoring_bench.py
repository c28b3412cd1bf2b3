"""Monitoring benchmark: memory of the monitoring stack on each monitoring server, and the time
to compute the infrastructure indicator of the current month from the servers' HTTP APIs.

Runs on a converged lab (the one GESTIC_LAB_NAME / GESTIC_STATE_DIR name; `nox -s bench` uses
its bench lab). Memory per unit is the resident set of the unit's main process (all of these
are single-process daemons), and the unit's cgroup `memory.current` where the host has memory
accounting. Goal (issue "infrastructure indicator"): the stack <= 200 MB on its host. Writes
section "monitoring" of the results file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from results_file import write_section

from gestic.environments.context import Context
from gestic.procedures.monitoring.indicator import current_month, parse_period
from gestic.procedures.monitoring.service import infra_indicator, monitoring_of

GOAL_MB = 200.0
UNITS = "prometheus.service prometheus-*.service gestic-sql-probe@*.service"
# one line per running unit: name, main PID, RSS (KiB), cgroup memory.current (bytes or "-")
PROBE = f"""
for u in $(systemctl list-units --plain --no-legend --state=running {UNITS} | awk '{{print $1}}')
do
  pid=$(systemctl show -p MainPID --value "$u")
  rss=$(ps -o rss= -p "$pid" 2>/dev/null | tr -d ' ')
  cg=$(systemctl show -p ControlGroup --value "$u")
  cur=$(cat "/sys/fs/cgroup$cg/memory.current" 2>/dev/null || echo -)
  echo "$u $pid ${{rss:-0}} $cur"
done
"""


def host_memory(ctx: Context, host: str) -> dict[str, Any]:
    done = ctx.access.run(host, PROBE, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"{host}: cannot read the monitoring units: {done.stderr.strip()}")
    units: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        name, pid, rss_kib, current = line.split()
        units[name] = {
            "pid": int(pid),
            "rss_mb": round(int(rss_kib) / 1024, 1),
            "cgroup_mb": None if current == "-" else round(int(current) / 2**20, 1),
        }
    if "prometheus.service" not in units:
        raise SystemExit(f"{host}: prometheus.service is not running: converge the lab first")
    total = round(sum(u["rss_mb"] for u in units.values()), 1)
    return {"units": units, "rss_total_mb": total, "goal_mb": GOAL_MB, "met": total <= GOAL_MB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    ctx = Context.from_env()
    mon = monitoring_of(ctx)
    ctx.access.write(ctx.model)
    hosts = {host: host_memory(ctx, host) for host in mon.servers}
    for host, data in hosts.items():
        print(f"{host}: monitoring stack {data['rss_total_mb']} MB RSS (goal <= {GOAL_MB} MB)")
        for name, unit in sorted(data["units"].items()):
            print(f"    {name:45} {unit['rss_mb']:>7} MB")
    period = parse_period(current_month(mon.zone), mon.zone)
    start = time.perf_counter()
    indicator = infra_indicator(ctx, period, record=False, accept_gaps=True)
    indicator_s = round(time.perf_counter() - start, 2)
    print(f"indicator of {period.label}: {indicator_s} s ({indicator.overall} %)")
    worst = max(d["rss_total_mb"] for d in hosts.values())
    write_section(
        args.output,
        "monitoring",
        {
            "hosts": hosts,
            "max_rss_total_mb": worst,
            "indicator_month_s": indicator_s,
            "indicator_measured_s": round(sum(s.measured_s for s in indicator.services), 1),
        },
    )
    if worst > GOAL_MB:
        print(f"goal missed: {worst} MB > {GOAL_MB} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
