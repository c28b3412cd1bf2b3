"""Log centralisation on the real lab: failed logins reach the review; an outage loses nothing."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.environments.context import Context
from gestic.lab import names

from .labkit import Lab, run_on

TARGET = "db-p1"  # any host but the log host
LOG_HOST = "svc-p1"


def ssh(ctx: Context, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return run_on(ctx, host, command)


def review(ctx: Context, out: Path) -> dict[str, Any]:
    period = datetime.now(ZoneInfo("America/Bogota")).strftime("%Y-%m")
    args = ["logs", "review", "--period", period, "--output", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_a_failed_ssh_login_shows_up_in_the_review(lab: Lab, tmp_path: Path) -> None:
    ctx = lab.ctx
    ctx.access.write(ctx.model)
    key = tmp_path / "not-authorised"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    intruder = f"intruso{secrets.token_hex(3)}"
    address = str(ctx.model.hosts[TARGET].address)
    attempt = subprocess.run(
        [
            "ip", "netns", "exec", names.router_netns(ctx.lab_stack.settings.lab),
            "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", f"{intruder}@{address}", "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert attempt.returncode == 255, attempt.stderr
    assert "Permission denied" in attempt.stderr

    deadline = time.monotonic() + 60
    while True:
        data = review(ctx, tmp_path / "reports")
        mine = [
            e
            for e in data["events"]
            if e["kind"] == "login_failed" and e["host"] == TARGET and e["user"] == intruder
        ]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert len(mine) == 1, f"no failed login of {intruder} on {TARGET} in the review"
    (event,) = mine
    assert event["detail"] == "unknown user"
    assert event["source"] == str(ctx.model.sites[ctx.model.hosts[TARGET].site].gateway.ip)
    assert event["origin"].startswith(f"{TARGET}/auth.log")
    assert data["hosts"][TARGET]["login_failed"] >= 1
    assert TARGET not in data["silent_hosts"]
    html = Path(tmp_path / "reports").glob("revision-logs-*.html")
    assert any(intruder in p.read_text() for p in html)
    (run, *_) = ctx.ledger.runs(kind="logs.review", limit=1)
    assert run.status == "succeeded"


def test_messages_logged_while_the_log_host_is_down_arrive_after_it_returns(lab: Lab) -> None:
    ctx = lab.ctx
    ctx.access.write(ctx.model)
    tokens = [f"gestic-outage-{secrets.token_hex(4)}-{i}" for i in range(3)]
    stopped = ssh(ctx, LOG_HOST, "sudo systemctl stop syslog.socket rsyslog.service")
    assert stopped.returncode == 0, stopped.stderr
    try:
        for token in tokens:
            sent = ssh(ctx, TARGET, f"logger -p auth.notice -t outage {token}")
            assert sent.returncode == 0, sent.stderr
            time.sleep(1)
        # the forwarder keeps them in its queue; restarting it meanwhile writes them to disk
        # and reads them back (queue.saveOnShutdown)
        restarted = ssh(ctx, TARGET, "sudo systemctl restart rsyslog")
        assert restarted.returncode == 0, restarted.stderr
    finally:
        started = ssh(ctx, LOG_HOST, "sudo systemctl start rsyslog.service syslog.socket")
        assert started.returncode == 0, started.stderr
    path = f"/var/log/remote/{TARGET}/auth.log"
    deadline = time.monotonic() + 90
    missing = list(tokens)
    while missing and time.monotonic() < deadline:
        found = ssh(ctx, LOG_HOST, f"sudo grep -o 'gestic-outage-[0-9a-f]*-[0-9]' {path}")
        missing = [t for t in tokens if t not in found.stdout.split()]
        if missing:
            time.sleep(2)
    assert not missing, f"lost during the outage: {missing}"
