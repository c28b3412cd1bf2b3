"""One table of the fast-feedback goals from the sections the other benchmarks wrote.

    python bench/summary.py --output bench/results.json

Writes section "goals": each figure, its goal and whether it was met (None when the benchmark
that measures it did not run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from results_file import write_section


def _get(document: dict[str, Any], *path: str) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        ("no-op converge (s, Mitogen)", ("converge", "noop_s"), 30.0, "<="),
        ("first converge (s, Mitogen)", ("converge", "first_s"), 120.0, "<="),
        ("Mitogen speed-up over stock, no-op converge (x)", ("converge", "mitogen_speedup"), 5.0,
         ">="),
        ("verify (s)", ("converge", "verify_s"), 20.0, "<="),
        ("robot overhead over plain robot (%)", ("rpa", "overhead", "overhead_pct"), 10.0, "<="),
        ("drill RTO over irreducible time, worst service (x)",
         ("dr", "drill", "max_overhead_ratio"), 1.2, "<="),
        ("chaos: queue items lost while robots are killed", ("rpa", "chaos", "lost"), 0, "<="),
        ("chaos: queue items completed twice", ("rpa", "chaos", "completed_twice"), 0, "<="),
        ("chaos: killed drills not recovered to a clean lab", ("dr_chaos", "lost"), 0, "<="),
        ("monitoring stack memory on its host, worst server (MB)",
         ("monitoring", "max_rss_total_mb"), 200.0, "<="),
        ("queue on PostgreSQL, 4 workers: items processed twice",
         ("rpa_queue", "postgresql", "workers_4", "processed_twice"), 0, "<="),
    ]  # fmt: skip
    out = []
    for name, path, goal, op in rows:
        value = _get(document, *path)
        met = None if value is None else (value <= goal if op == "<=" else value >= goal)
        out.append({"figure": name, "value": value, "goal": f"{op} {goal}", "met": met})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    document = json.loads(args.output.read_text()) if args.output.is_file() else {}
    rows = goals(document)
    write_section(args.output, "goals", {"rows": rows})
    for row in rows:
        print(f"{row['figure']:55} {row['value']!s:>8} {row['goal']:>8}  met={row['met']}")


if __name__ == "__main__":
    main()
