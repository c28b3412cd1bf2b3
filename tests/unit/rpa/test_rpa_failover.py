"""The RPA service's side of a DR recovery on a bots host (gestic.rpa.failover): which ledger
the scheduler's environment names, the unit and ledger probes (a real SQLite ledger), and the
JSON document the drill reads."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gestic.rpa import failover

PG_URL = (
    "postgresql+psycopg://gestic:s%40cret@db-a1:5432/gestic"
    "?hostaddr=10.213.2.21&sslmode=verify-full&sslrootcert=/etc/gestic/rpa-ledger-dr-ca.pem"
)


def _env(tmp_path: Path, body: str) -> Path:
    file = tmp_path / "rpa-scheduler.env"
    file.write_text(body)
    return file


def _sqlite_ledger(tmp_path: Path, rows: int) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    engine = create_engine(f"sqlite:///{state / 'ledger.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE gestic_runs (id integer primary key)"))
        for i in range(rows):
            conn.execute(text("INSERT INTO gestic_runs (id) VALUES (:i)"), {"i": i})
    engine.dispose()
    return state


def test_the_environment_file_names_the_ledger_as_systemd_reads_it(tmp_path: Path) -> None:
    env = _env(
        tmp_path, f"# managed\nGESTIC_STATE_DIR=/var/lib/gestic-rpa\nGESTIC_LEDGER_URL='{PG_URL}'\n"
    )
    values = failover.read_env_file(env)
    assert values["GESTIC_LEDGER_URL"] == PG_URL  # quotes gone, & and ? kept
    assert failover.ledger_host(failover.ledger_url_of(values, env)) == "db-a1"
    assert failover.status(env)["ledger_host"] == "db-a1"
    sqlite = _env(tmp_path, "GESTIC_STATE_DIR=/var/lib/gestic-rpa\n")
    url = failover.ledger_url_of(failover.read_env_file(sqlite), sqlite)
    assert url == "sqlite:////var/lib/gestic-rpa/ledger.db"
    assert failover.ledger_host(url) is None


def test_an_environment_without_a_ledger_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, "GESTIC_USER=gestic-rpa\n")
    with pytest.raises(failover.RpaError, match=f"{env}: neither GESTIC_LEDGER_URL"):
        failover.status(env)
    with pytest.raises(failover.RpaError, match="cannot read the scheduler's environment"):
        failover.status(tmp_path / "missing.env")


def test_the_ledger_probe_counts_rows_of_the_schedulers_own_ledger(tmp_path: Path) -> None:
    state = _sqlite_ledger(tmp_path, rows=3)
    env = _env(tmp_path, f"GESTIC_STATE_DIR={state}\n")
    probe = {"type": "ledger", "name": "ledger", "table": "gestic_runs", "min_value": 3}
    assert failover.probe_ledger(probe, env_file=env, expect_host=None) is None
    fewer = failover.probe_ledger({**probe, "min_value": 4}, env_file=env, expect_host=None)
    assert fewer == "gestic_runs on SQLite has 3 rows, fewer than 4"
    missing = failover.probe_ledger(
        {**probe, "table": "gestic_rpa_items"}, env_file=env, expect_host=None
    )
    assert missing is not None
    assert "no such table: gestic_rpa_items" in missing
    assert "not a SQL name" in str(
        failover.probe_ledger({**probe, "table": "x; DROP"}, env_file=env, expect_host=None)
    )


def test_the_ledger_probe_refuses_a_scheduler_still_on_the_lost_ledger(tmp_path: Path) -> None:
    env = _env(tmp_path, f"GESTIC_LEDGER_URL='{PG_URL.replace('db-a1', 'db-p1')}'\n")
    problem = failover.probe_ledger({"type": "ledger"}, env_file=env, expect_host="db-a1")
    assert problem == "the scheduler's ledger is on db-p1, not on db-a1"


def test_the_ledger_probe_never_creates_a_sqlite_ledger(tmp_path: Path) -> None:
    env = _env(tmp_path, f"GESTIC_STATE_DIR={tmp_path / 'none'}\n")
    problem = failover.probe_ledger({"type": "ledger"}, env_file=env, expect_host=None)
    assert problem is not None
    assert "does not exist (yet)" in problem
    assert not (tmp_path / "none").exists()


class FakeSystemd:
    """`systemctl show` answers from a list of states; `restart` is recorded."""

    def __init__(self, states: list[tuple[str, str, str]]) -> None:
        self.states = states
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if args[0] == "show":
            active, sub, pid = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            out = f"ActiveState={active}\nSubState={sub}\nMainPID={pid}\n"
            return subprocess.CompletedProcess(list(args), 0, out, "")
        return subprocess.CompletedProcess(list(args), 0, "", "")


def test_the_unit_probe_wants_the_same_main_process_after_settling() -> None:
    probe = {"type": "unit", "unit": "gestic-rpa-scheduler.service", "settle_seconds": 2}
    slept: list[float] = []
    steady = FakeSystemd([("active", "running", "41"), ("active", "running", "41")])
    assert failover.probe_unit(probe, systemctl=steady, sleep=slept.append) is None
    assert slept == [2.0]
    crashing = FakeSystemd([("active", "running", "41"), ("activating", "auto-restart", "0")])
    problem = failover.probe_unit(probe, systemctl=crashing, sleep=lambda _s: None)
    assert problem is not None
    assert "did not stay up: main process 41 became 0" in problem
    failed = FakeSystemd([("failed", "failed", "0")])
    assert "is failed/failed, not active/running" in str(
        failover.probe_unit(probe, systemctl=failed, sleep=lambda _s: None)
    )


def test_activate_restarts_then_reports_like_the_backup_agent(tmp_path: Path) -> None:
    state = _sqlite_ledger(tmp_path, rows=1)
    env = _env(tmp_path, f"GESTIC_STATE_DIR={state}\n")
    systemd = FakeSystemd([("active", "running", "7")])
    probes: list[dict[str, Any]] = [
        {"type": "unit", "name": "up", "unit": "gestic-rpa-scheduler.service", "settle_seconds": 1},
        {"type": "ledger", "name": "ledger", "table": "gestic_runs", "min_value": 1},
    ]
    result = failover.activate(
        service="rpa",
        units=["gestic-rpa-scheduler.service"],
        env_file=env,
        expect_host=None,
        probes=probes,
        systemctl=systemd,
    )
    assert systemd.calls[0] == ["restart", "gestic-rpa-scheduler.service"]
    assert result["ok"], result
    assert [p["ok"] for p in result["probes"]] == [True, True]
    assert [p["detail"] for p in result["probes"]] == ["ok", "gestic_runs on SQLite: 1 rows"]
    assert all(p["passed_at"] for p in result["probes"])
    assert result["restore_s"] == 0.0
    assert {"start_s", "probe_s", "started_at", "finished_at", "snapshot", "marker"} <= set(result)
    json.dumps(result)  # what the drill reads from the task's stdout


def test_a_probe_that_never_passes_fails_after_its_timeout(tmp_path: Path) -> None:
    env = _env(tmp_path, f"GESTIC_LEDGER_URL='{PG_URL}'\n")
    now = [0.0]
    results = failover.run_probes(
        [{"type": "ledger", "name": "l", "timeout_seconds": 3}],
        env_file=env,
        expect_host="db-b9",
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert [(r["ok"], r["tries"]) for r in results] == [(False, 4)]
    assert results[0]["detail"] == "the scheduler's ledger is on db-a1, not on db-b9"
    assert (
        failover.main(["activate", "--service", "rpa", "--env-file", str(env), "--probes", "{"])
        == 2
    )
