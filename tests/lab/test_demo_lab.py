"""`gestic demo` on the real lab: the phases after provisioning (backup, robots, reports).

The infra phase is what the session lab fixture and test_lab_integration.py already do, and the
drill phase invokes `gestic drill` (test_drill_lab.py): this test proves the demo wires the other
commands as a person would run them, and that each one records its run in the ledger.
"""

from __future__ import annotations

from click.testing import CliRunner

from gestic.cli.main import cli

from .labkit import Lab


def test_demo_backs_up_runs_the_robots_and_writes_the_reports(lab: Lab) -> None:
    ctx = lab.ctx
    result = CliRunner().invoke(
        cli,
        ["--inventory", str(ctx.inventory), "demo", "--only", "backup", "--only", "robots",
         "--only", "reports"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "demo complete" in result.output
    kinds = {r.kind for r in ctx.ledger.runs(limit=200)}
    assert {"backup.run", "backup.check", "backup.verify"} <= kinds
    assert {"access.report", "logs.review", "rpa.report", "vulnscan.report"} <= kinds
    assert (ctx.artifacts / "access" / "access-report.html").is_file()
