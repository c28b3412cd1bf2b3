"""The `gestic` command without a lab: validate, errors, ledger listing, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gestic.cli import cli
from gestic.ledger import Ledger

from .conftest import LAB_INVENTORY


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


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("validate", "infra", "lab", "converge", "verify", "demo", "runs"):
        assert command in result.output
