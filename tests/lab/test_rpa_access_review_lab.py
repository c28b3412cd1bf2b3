"""The access review on the lab's own access report: made on the controller, reviewed on the
bots host.

`gestic access report` collects every host's access record over SSH and publishes the report
into the shared ledger's database (db-p1's `gestic`, through the SSH forward to a bots host).
The bots host, which has no SSH access to the other hosts, runs revision-accesos on the newest
published report, as its scheduler does: every account the report found is reviewed, and none
of the fixture's.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from gestic.store.ledger import LEDGER_URL_ENV

from .labkit import ROOT, Lab, on_host, run_on
from .rpakit import AS_SCHEDULER, BOTS_HOST

REVIEW = f"COLUMNS=250 {AS_SCHEDULER} rpa run revision-accesos --var TICKET=CHG-LAB-3"


def _gestic(*args: str) -> subprocess.CompletedProcess[str]:
    """gestic on the controller with the environment's own (shared) ledger."""
    env = {k: v for k, v in os.environ.items() if k != LEDGER_URL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        cwd=ROOT, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip


def test_the_bots_host_reviews_the_access_report_the_controller_published(
    lab: Lab, tmp_path: Path
) -> None:
    ctx = lab.ctx
    made = _gestic("access", "report", "--output", str(tmp_path))
    assert made.returncode == 0, made.stdout + made.stderr
    assert "published for the bots" in made.stdout, made.stdout
    report = json.loads((tmp_path / "access-report.json").read_text())
    found = {
        (host, account["username"])
        for host, record in report["hosts"].items()
        for account in record["accounts"]
        if account["access"] != "automation"
    }
    assert {host for host, _ in found} == set(ctx.model.hosts)  # people on every host

    # a bots host cannot make one (no SSH to the other hosts): it takes the published one
    refused = run_on(ctx, BOTS_HOST, f"sudo sh -c {shlex.quote(REVIEW + ' --access-report fresh')}")
    assert refused.returncode != 0
    out = on_host(ctx, BOTS_HOST, f"{REVIEW} --access-report published", timeout=600)
    assert f"made at {report['generated_at'][:10]}" in out, out
    run_id = int(out.rsplit("revision-accesos: run ", 1)[1].split()[0])
    items = json.loads(
        on_host(ctx, BOTS_HOST, f"{AS_SCHEDULER} rpa items revision-accesos --limit 1000 --json")
    )
    reviewed = {
        (i["payload"]["host"], i["payload"]["cuenta"])
        for i in items
        if i["run_id"] == run_id and i["queue"] == "revision-accesos.cuentas"
    }
    assert reviewed == found  # the lab's accounts, not the fixture's (jperez, tmp-proveedor)
    decided = [
        i for i in items if i["run_id"] == run_id and i["queue"] == "revision-accesos.decisiones"
    ]
    assert len(decided) == len(found)
