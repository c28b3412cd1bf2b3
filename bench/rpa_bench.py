"""RPA benchmarks: orchestrator overhead per robot run, robot throughput, chaos, queue throughput.

* overhead: the no-op bot on one work item, run (a) directly with `robot` and rpaframework's
  FileAdapter, and (b) through `gestic`'s runner (queue, lease, ledger, output.xml parsing);
  median wall time of each, and (b - a) / a. Goal: under 10 %.
* throughput: N items through the no-op bot with 1 and with 4 robot workers (items/s).
* chaos: the test bot works 40 items with 3 robots while robots are SIGKILLed at random
  (`gestic.rpa.chaos`), a few rounds with different seeds: faults injected, items completed,
  items lost (goal 0), items completed more than once in the queue (goal 0), and items whose
  work a killed robot had done before recording it (redone: at-least-once work, said so).
* queue (section "rpa_queue"): the work-item queue alone, no robots: N items claimed and
  completed by 1, 2 and 4 worker processes (items/s), on a SQLite file and on a throwaway
  PostgreSQL cluster (`gestic.tools.pgcluster`, durable settings: every commit synced, as
  SQLite does), both in the same temporary directory; each item must be processed once.

Usage: python bench/rpa_bench.py --output bench/results.json [--repeat 25] [--items 200]
       python bench/rpa_bench.py --output bench/results.json --queue-only [--queue-items 1000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import yaml
from results_file import write_section

from gestic.paths import cache_dir
from gestic.rpa.chaos import RobotKiller
from gestic.rpa.manifest import SeedItem, load_bot
from gestic.rpa.queue import DONE, WorkQueue
from gestic.rpa.robots_env import RobotsEnv
from gestic.rpa.runner import Runner
from gestic.store.ledger import Ledger
from gestic.tools import pgcluster

ROOT = Path(__file__).resolve().parents[1]
NOOP = ROOT / "tests" / "unit" / "data" / "rpa" / "robots" / "noop"
PRUEBA = ROOT / "tests" / "unit" / "data" / "rpa" / "robots" / "prueba"


def plain_robot(env: RobotsEnv, work: Path) -> float:
    """One run of the no-op suite with `robot` alone (FileAdapter, one input item)."""
    items = work / "work-items.json"
    items.write_text(json.dumps([{"payload": {}, "files": {}}]))
    out = work / "plain"
    cmd = [
        str(env.python), "-m", "robot", "--rpa", "--outputdir", str(out),
        "--output", "output.xml", "--log", "log.html", "--report", "NONE",
        "--console", "quiet", str(NOOP / "tasks" / "nada.robot"),
    ]  # fmt: skip
    environ = {
        **os.environ,
        "RPA_WORKITEMS_ADAPTER": "RPA.Robocorp.WorkItems.FileAdapter",
        "RPA_INPUT_WORKITEM_PATH": str(items),
        "RPA_OUTPUT_WORKITEM_PATH": str(work / "out.json"),
        "ROBOCORP_HOME": str(work / ".robocorp"),
    }
    start = time.perf_counter()
    subprocess.run(cmd, env=environ, check=True, capture_output=True)
    return time.perf_counter() - start


def make_runner(work: Path, env: RobotsEnv) -> Runner:
    url = f"sqlite:///{work / 'ledger.db'}"
    return Runner(
        queue=WorkQueue(url),
        ledger=Ledger(url),
        env=env,
        state=work / "state",
        artifacts=work / "artifacts",
        poll_s=0.05,
    )


def chaos(env: RobotsEnv, work: Path, *, rounds: int, items: int = 40, kills: int = 6) -> dict:
    """Rounds of a queue worked while robots are killed at random; what was lost or doubled."""
    bot_dir = work / "chaos" / "prueba"  # the manifest names its directory
    shutil.copytree(PRUEBA, bot_dir)
    manifest = yaml.safe_load((bot_dir / "manifest.yaml").read_text())
    manifest["max_attempts"] = 20  # an item may be hit several times
    (bot_dir / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    bot = load_bot(bot_dir)
    runs = []
    for seed in range(rounds):
        round_dir = work / f"chaos-{seed}"
        round_dir.mkdir()
        runner = make_runner(round_dir, env)
        marks = round_dir / "marks"
        killer = RobotKiller(kills=kills, seed=seed).start()
        start = time.perf_counter()
        try:
            run = runner.run_bot(
                bot,
                workers=3,
                seed=[SeedItem(payload={"n": k}, files={}) for k in range(items)],
                variables={"MARCAS": str(marks), "PAUSA": "0.4"},
            )
        finally:
            killer.stop()
        elapsed = time.perf_counter() - start
        queue_items = runner.queue.items(queue=bot.manifest.queue)
        attempts = runner.queue.attempts([i.id for i in queue_items])
        done_attempts = [a.item_id for a in attempts if a.outcome == DONE]
        work_marks = (marks / "hechos.txt").read_text().split() if marks.exists() else []
        runs.append(
            {
                "seed": seed,
                "faults_injected": len(killer.killed),
                "items": items,
                "completed": sum(i.state == DONE for i in queue_items),
                "lost": sum(i.state != DONE for i in queue_items),
                "completed_twice": len(done_attempts) - len(set(done_attempts)),
                "redone_work": len(work_marks) - len(set(work_marks)),
                "robots_killed": sum(r.killed for r in run.robots),
                "seconds": round(elapsed, 2),
            }
        )
        print("chaos round:", runs[-1])
    return {
        "rounds": runs,
        "faults_injected": sum(r["faults_injected"] for r in runs),
        "recovered_items": sum(r["completed"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
        "completed_twice": sum(r["completed_twice"] for r in runs),
        "redone_work": sum(r["redone_work"] for r in runs),
        "goal_met": all(r["lost"] == 0 and r["completed_twice"] == 0 for r in runs),
    }


def _queue_worker(url: str, queue: str, start: Barrier, out: Queue[list[int]]) -> None:
    q = WorkQueue(url)  # connected (tables checked) before the clock starts
    done = []
    start.wait(timeout=120)
    while (item := q.claim(queue, lease_s=60, worker=f"bench-{os.getpid()}")) is not None:
        assert item.lease_owner
        q.complete(item.id, item.lease_owner)
        done.append(item.id)
    q.close()
    out.put(done)


def queue_run(url: str, *, items: int, workers: int) -> dict[str, Any]:
    """`items` items claimed and completed by `workers` processes: wall time from the start."""
    name = f"bench-{workers}"
    q = WorkQueue(url)
    ids = [q.create(bot="bench", queue=name, payload={"n": k}) for k in range(items)]
    q.close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    out: Queue[list[int]] = ctx.Queue()
    args = (url, name, start, out)
    procs = [ctx.Process(target=_queue_worker, args=args) for _ in range(workers)]
    for p in procs:
        p.start()
    start.wait(timeout=120)
    began = time.perf_counter()
    per_worker = [out.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join(timeout=60)
    processed = [i for chunk in per_worker for i in chunk]
    return {
        "items": items,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "items_per_s": round(len(processed) / elapsed, 1),
        "per_worker": [len(chunk) for chunk in per_worker],
        "processed_twice": len(processed) - len(set(processed)),
        "missed": len(set(ids) - set(processed)),
    }


def queue_throughput(work: Path, *, items: int) -> dict[str, Any]:
    """The queue alone on SQLite and on PostgreSQL, with 1, 2 and 4 worker processes."""
    results: dict[str, Any] = {"items": items}
    backends: dict[str, str] = {"sqlite": f"sqlite:///{work / 'queue-bench.db'}"}
    with pgcluster.start(parent=work, durable=True) as cluster:
        cluster.create_database("queue_bench")
        backends["postgresql"] = cluster.url("queue_bench")
        results["postgresql_server"] = f"PostgreSQL {pgcluster.PG_VERSION}, durable (fsync on)"
        for backend, url in backends.items():
            results[backend] = {}
            for workers in (1, 2, 4):
                run = queue_run(url, items=items, workers=workers)
                results[backend][f"workers_{workers}"] = run
                print(f"queue on {backend}, {workers} workers:", run)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--chaos-rounds", type=int, default=3)
    parser.add_argument("--queue-items", type=int, default=1000)
    parser.add_argument("--queue-only", action="store_true", help="only the queue benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gestic-queue-bench-") as tmp:
        # the cluster's server user (postgres, when run as root) must reach the directory
        os.chmod(tmp, 0o755)
        write_section(args.output, "rpa_queue", queue_throughput(Path(tmp), items=args.queue_items))
    if args.queue_only:
        print(f"wrote {args.output}")
        return 0
    env = RobotsEnv.ensure(ROOT / "robots" / "requirements.txt", cache_dir(), log=print)
    bot = load_bot(NOOP)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gestic-rpa-bench-") as tmp:
        work = Path(tmp)
        runner = make_runner(work, env)
        plain_robot(env, work)  # warm the file system caches once
        plain, orchestrated = [], []
        for _ in range(args.repeat):
            plain.append(plain_robot(env, work))
            start = time.perf_counter()
            runner.run_bot(bot, seed=[SeedItem(payload={}, files={})])
            orchestrated.append(time.perf_counter() - start)
        a, b = statistics.median(plain), statistics.median(orchestrated)
        results["overhead"] = {
            "repeat": args.repeat,
            "plain_robot_s": round(a, 3),
            "gestic_run_s": round(b, 3),
            "overhead_s": round(b - a, 3),
            "overhead_pct": round(100 * (b - a) / a, 1),
            "goal_pct": 10,
            "goal_met": 100 * (b - a) / a <= 10,
            "plain_runs_s": [round(x, 3) for x in plain],
            "gestic_runs_s": [round(x, 3) for x in orchestrated],
        }
        print(json.dumps(results["overhead"], indent=2))
        results["throughput"] = {}
        for workers in (1, 4):
            seed = [SeedItem(payload={"n": k}, files={}) for k in range(args.items)]
            start = time.perf_counter()
            run = runner.run_bot(bot, seed=seed, workers=workers)
            elapsed = time.perf_counter() - start
            done = run.queues[bot.manifest.queue].get("done", 0)
            results["throughput"][f"workers_{workers}"] = {
                "items": args.items,
                "done": done,
                "robots": len(run.robots),
                "seconds": round(elapsed, 2),
                "items_per_s": round(done / elapsed, 1),
            }
            print(workers, "workers:", results["throughput"][f"workers_{workers}"])
        results["chaos"] = chaos(env, work, rounds=args.chaos_rounds)
        print(json.dumps({k: v for k, v in results["chaos"].items() if k != "rounds"}, indent=2))
    write_section(args.output, "rpa", results)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
