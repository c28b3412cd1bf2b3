"""The RPA service's side of a DR recovery, run on a bots host (`python -m gestic.rpa.failover`).

The bots hosts' data is the shared ledger (gestic_rpa.ledger): a DR recovery restores it with
its database service (wave `datos` of dr/plan.yml), then the rpa_scheduler role points the DR
site's scheduler at that copy (`tasks_from: failover`) and the drill runs this module there,
from the host's own gestic release and as root:

  activate --service S --unit U... --env-file F [--expect-host H] --probes JSON
      restart the units, then probe until every probe passes or times out; prints the same
      JSON document as the backup agent's `recover` (nothing is restored here: restore_s 0)
  status --env-file F
      which ledger the scheduler's environment names (failback checks it is the primary's)

Probes (validated in dr/plan.yml, gestic.procedures.dr.plan):
  unit    the systemd unit is active and running, with the same main process for `settle_seconds`
  ledger  the scheduler's ledger URL (GESTIC_LEDGER_URL of its environment file, else the
          SQLite ledger of its state directory) names the expected host, opens, and `table`
          holds at least `min_value` rows
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gestic.errors import RpaError
from gestic.store.db import cause, make_engine, masked

LEDGER_URL_ENV = "GESTIC_LEDGER_URL"
STATE_DIR_ENV = "GESTIC_STATE_DIR"
TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
Systemctl = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _systemctl(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, check=False, timeout=120
    )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile (single or double quotes stripped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RpaError(f"{path}: cannot read the scheduler's environment: {exc.strerror}") from exc
    found: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    return found


def ledger_url_of(env: dict[str, str], env_file: Path) -> str:
    """The ledger URL the scheduler uses: its GESTIC_LEDGER_URL, else its state dir's SQLite."""
    if url := env.get(LEDGER_URL_ENV):
        return url
    state = env.get(STATE_DIR_ENV)
    if not state:
        raise RpaError(f"{env_file}: neither {LEDGER_URL_ENV} nor {STATE_DIR_ENV} is set")
    return f"sqlite:///{Path(state) / 'ledger.db'}"


def ledger_host(url: str) -> str | None:
    """The host a ledger URL names (None for SQLite)."""
    try:
        return make_url(url).host
    except ArgumentError as exc:
        raise RpaError(f"the scheduler's ledger URL {masked(url)} is unusable: {exc}") from exc


# --- probes -----------------------------------------------------------------------------------


def _unit_state(unit: str, systemctl: Systemctl) -> dict[str, str]:
    done = systemctl(["show", "--property=ActiveState,SubState,MainPID", unit])
    if done.returncode != 0:
        raise RpaError(f"systemctl show {unit}: {(done.stderr or done.stdout).strip()}")
    return dict(ln.split("=", 1) for ln in done.stdout.splitlines() if "=" in ln)


def probe_unit(
    probe: dict[str, Any],
    *,
    systemctl: Systemctl = _systemctl,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """None if the unit runs and keeps its main process for `settle_seconds`, else why not."""
    unit = str(probe["unit"])
    before = _unit_state(unit, systemctl)
    if (before.get("ActiveState"), before.get("SubState")) != ("active", "running"):
        return f"{unit} is {before.get('ActiveState')}/{before.get('SubState')}, not active/running"
    sleep(float(probe.get("settle_seconds", 5)))
    after = _unit_state(unit, systemctl)
    if after.get("SubState") != "running" or after.get("MainPID") != before.get("MainPID"):
        return (
            f"{unit} did not stay up: main process {before.get('MainPID')} became "
            f"{after.get('MainPID')} ({after.get('ActiveState')}/{after.get('SubState')})"
        )
    return None


Outcome = tuple[str | None, str]
"""(why the probe does not pass yet, or None; what it saw when it passes)."""


def probe_ledger(probe: dict[str, Any], *, env_file: Path, expect_host: str | None) -> str | None:
    """None if the scheduler's ledger is the expected one, opens, and `table` has enough rows."""
    return check_ledger(probe, env_file=env_file, expect_host=expect_host)[0]


def check_ledger(probe: dict[str, Any], *, env_file: Path, expect_host: str | None) -> Outcome:
    """`probe_ledger` with what it saw: "<table> on <host>: <n> rows"."""
    table = str(probe.get("table", "gestic_runs"))
    if not TABLE.match(table):
        return f"table {table!r} is not a SQL name", ""
    url = ledger_url_of(read_env_file(env_file), env_file)
    host = ledger_host(url)
    if expect_host is not None and host != expect_host:
        return (
            f"the scheduler's ledger is on {host or 'this host (SQLite)'}, not on {expect_host}",
            "",
        )
    if host is None:
        path = make_url(url).database or ""
        if not Path(path).is_file():  # never create one: the scheduler's user owns it
            return f"the scheduler's SQLite ledger {path} does not exist (yet)", ""
    try:
        engine = make_engine(url, error=RpaError, what="RPA ledger")
    except RpaError as exc:
        return str(exc), ""
    try:
        with engine.connect() as conn:
            rows = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    except SQLAlchemyError as exc:
        return f"{masked(url)}: {cause(exc)}", ""
    finally:
        engine.dispose()
    minimum = int(probe.get("min_value", 0))
    if rows < minimum:
        return f"{table} on {host or 'SQLite'} has {rows} rows, fewer than {minimum}", ""
    return None, f"{table} on {host or 'SQLite'}: {rows} rows"


def _probe_once(
    probe: dict[str, Any], *, env_file: Path, expect_host: str | None, systemctl: Systemctl
) -> Outcome:
    try:
        if probe["type"] == "unit":
            return probe_unit(probe, systemctl=systemctl), "ok"
        if probe["type"] == "ledger":
            return check_ledger(probe, env_file=env_file, expect_host=expect_host)
    except RpaError as exc:
        return str(exc), ""
    return f"probe type {probe['type']!r} does not run on a bots host (unit, ledger)", ""


def run_probes(
    probes: list[dict[str, Any]],
    *,
    env_file: Path,
    expect_host: str | None,
    systemctl: Systemctl = _systemctl,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Each probe retried until it passes or its timeout ends (the agent's result shape)."""
    results = []
    for probe in probes:
        start = clock()
        deadline = start + float(probe.get("timeout_seconds", 60))
        tries = 0
        while True:
            tries += 1
            problem, seen = _probe_once(
                probe, env_file=env_file, expect_host=expect_host, systemctl=systemctl
            )
            if problem is None or clock() >= deadline:
                break
            sleep(1.0)
        results.append(
            {
                "name": probe.get("name", probe["type"]),
                "type": probe["type"],
                "ok": problem is None,
                "detail": problem or seen,
                "tries": tries,
                "duration_s": clock() - start,
                "passed_at": clock() if problem is None else None,
            }
        )
    return results


# --- commands ---------------------------------------------------------------------------------


def activate(
    *,
    service: str,
    units: Sequence[str],
    env_file: Path,
    expect_host: str | None,
    probes: list[dict[str, Any]],
    systemctl: Systemctl = _systemctl,
) -> dict[str, Any]:
    """Restart the units on the ledger the environment names now, then probe them."""
    t0 = time.time()
    for unit in units:
        done = systemctl(["restart", unit])
        if done.returncode != 0:
            raise RpaError(f"systemctl restart {unit}: {(done.stderr or done.stdout).strip()}")
    started = time.time()
    results = run_probes(probes, env_file=env_file, expect_host=expect_host, systemctl=systemctl)
    finished = time.time()
    return {
        "ok": all(r["ok"] for r in results),
        "service": service,
        "host": os.uname().nodename,
        "mode": "live",
        "snapshot": {},
        "restore_s": 0.0,  # nothing restored here: the ledger came back with its database
        "start_s": started - t0,
        "probe_s": finished - started,
        "probes": results,
        "started_at": t0,
        "finished_at": started,
        "marker": None,
        "bytes": 0,
        "ledger_host": ledger_host(ledger_url_of(read_env_file(env_file), env_file)),
    }


def status(env_file: Path) -> dict[str, Any]:
    url = ledger_url_of(read_env_file(env_file), env_file)
    return {"host": os.uname().nodename, "ledger_host": ledger_host(url)}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gestic.rpa.failover")
    sub = parser.add_subparsers(dest="command", required=True)
    act = sub.add_parser("activate", help="restart the RPA units and probe them")
    act.add_argument("--service", required=True)
    act.add_argument("--unit", action="append", default=[])
    act.add_argument("--env-file", type=Path, required=True)
    act.add_argument("--expect-host", default=None)
    act.add_argument("--probes", default="[]", help="JSON list of probes")
    st = sub.add_parser("status", help="which ledger the scheduler's environment names")
    st.add_argument("--env-file", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "status":
            result = status(args.env_file)
        else:
            try:
                probes = json.loads(args.probes)
            except json.JSONDecodeError as exc:
                raise RpaError(f"--probes is not JSON: {exc}") from exc
            result = activate(
                service=args.service,
                units=args.unit,
                env_file=args.env_file,
                expect_host=args.expect_host,
                probes=probes,
            )
    except RpaError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"gestic.rpa.failover: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0 if result.get("ok", True) else 4


if __name__ == "__main__":
    sys.exit(main())
