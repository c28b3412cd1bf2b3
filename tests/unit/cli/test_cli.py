"""The `gestic` command without a lab: validate, errors, ledger listing, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gestic.cli import demo_steps
from gestic.cli.main import cli
from gestic.environments.context import Context
from gestic.store.ledger import Ledger

from ...paths import LAB_INVENTORY


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")


def test_validate_reports_the_model() -> None:
    result = CliRunner().invoke(cli, ["--inventory", str(LAB_INVENTORY), "validate"])
    assert result.exit_code == 0, result.output
    assert "2 sites, 6 hosts, 4 services, 2 backup policies" in result.output


def test_validate_bad_inventory_exits_nonzero_naming_file(lab_inventory: Path) -> None:
    hosts = lab_inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("10.213.2.21", "10.213.9.21"))
    proc = subprocess.run(
        [sys.executable, "-m", "gestic", "--inventory", str(lab_inventory), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert f"{hosts}:" in proc.stdout
    assert "outside site 'alterno' network 10.213.2.0/24" in proc.stdout


def test_infra_up_with_bad_inventory_creates_nothing(lab_inventory: Path, tmp_path: Path) -> None:
    (lab_inventory / "hosts.yml").write_text("all: [not, a, group]\n")
    result = CliRunner().invoke(cli, ["--inventory", str(lab_inventory), "infra", "up"])
    assert result.exit_code != 0
    assert "a group must be a mapping" in str(result.exception)
    assert not (tmp_path / "state" / "pulumi").exists()


def test_runs_lists_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.record(kind="converge", target="lab") as run:
        run.changed = 3
        run.summary = "6 hosts"
    result = CliRunner().invoke(cli, ["--inventory", str(LAB_INVENTORY), "runs", "--json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert (record["kind"], record["status"], record["changed"]) == ("converge", "succeeded", 3)
    table = CliRunner().invoke(cli, ["--inventory", str(LAB_INVENTORY), "runs"])
    assert table.exit_code == 0, table.output
    assert "run ledger" in table.output


def test_verify_of_an_unknown_host_names_it_and_records_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--inventory", str(LAB_INVENTORY), "verify", "--host", "web-p1", "--host", "web-p9"]
    )
    assert result.exit_code == 1
    assert "--host web-p9: not a host of the model" in str(result.exception)
    assert "web-p1" not in str(result.exception).split("(hosts:")[0]  # only the unknown one
    assert Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").runs(kind="verify") == []


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("validate", "infra", "lab", "converge", "verify", "demo", "runs"):
        assert command in result.output


def test_demo_lists_its_phases_in_order() -> None:
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0, result.output
    assert "infra|backup|drill|robots|reports" in result.output


def test_demo_steps_of_each_phase_reuse_the_commands() -> None:
    ctx = Context.from_env(LAB_INVENTORY)
    with click.Context(cli, obj=ctx) as click_ctx:
        titles = {
            phase: [title for title, _ in demo_steps.for_phase(phase, click_ctx, ctx)]
            for phase in ("backup", "drill", "robots", "reports")
        }
    assert titles["backup"][0] == "back up every service now (cartera-db, portal)"
    assert "tier-1" in titles["backup"][2]
    assert titles["drill"] == ["DR drill: loss of the primary site, in test mode (evidence in dr/)"]
    assert [t.split(":")[0] for t in titles["robots"]] == [
        f"robot {bot}" for bot in demo_steps.DEMO_BOTS
    ]
    assert len(titles["reports"]) == 7
    # incidents before the indicators, the index of every report last
    assert titles["reports"][4].startswith("incidents")
    assert titles["reports"][5].startswith("both indicators")
    assert titles["reports"][6] == "index of the latest reports"
