"""`gestic secrets rotate` on the session lab: a new backup password is rotated in every
repository (backups and checks go on; the old password no longer opens them) and a new
database password reaches the portal (it answers with its database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gestic.environments.custody import BACKUP_PASSWORDS, LabSecrets
from gestic.procedures.backup.ops import backup_now, check
from gestic.store.ledger import SUCCEEDED

from .labkit import ROOT, Lab, on_host

SERVICE = "portal"
AGENT = "/usr/local/sbin/gestic-dr"
DB_PASSWORD = "/etc/gestic/secrets/cartera-portal.password"


def _gestic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        capture_output=True, text=True, check=False, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip


def _health(lab: Lab, host: str) -> dict[str, str]:
    address = lab.ctx.model.hosts[host].address
    url = f"http://{address}/api/health"
    script = f"import urllib.request as u; print(u.urlopen('{url}', timeout=15).read().decode())"
    return dict(json.loads(on_host(lab.ctx, host, f'python3 -c "{script}"')))


def test_a_rotated_backup_password_keeps_the_backups_going(lab: Lab) -> None:
    ctx = lab.ctx
    store = LabSecrets(file=ctx.access.state_dir / "secrets.yml")
    old = store.ensure(ctx.model)[BACKUP_PASSWORDS][SERVICE]
    done = _gestic("secrets", "rotate", "--backup", SERVICE)
    assert done.returncode == 0, done.stdout + done.stderr
    new = store.read()[BACKUP_PASSWORDS][SERVICE]
    assert new != old
    host = ctx.model.services[SERVICE].hosts[0]
    assert on_host(ctx, host, f"cat /etc/gestic/backup/{SERVICE}.password").strip() == new
    assert new not in done.stdout + done.stderr  # never printed
    snapshot = backup_now(ctx, SERVICE)
    assert snapshot.data["snapshot"]
    assert check(ctx, SERVICE, read_data=False).ok
    # the old keys are gone: rotating to the same password again opens every repository with
    # it and finds no other key to remove
    again = on_host(ctx, host, f"printf %s {new} | {AGENT} rekey {SERVICE}")
    assert json.loads(again) == {"service": SERVICE, "added": [], "removed": [], "changed": False}
    runs = ctx.ledger.runs(kind="secrets.rotate")
    assert runs
    assert runs[0].status == SUCCEEDED
    assert f"{BACKUP_PASSWORDS}.{SERVICE}" in runs[0].summary


def test_a_rotated_database_password_reaches_the_portal(lab: Lab) -> None:
    ctx = lab.ctx
    before = on_host(ctx, "db-p1", f"sha256sum {DB_PASSWORD}")
    done = _gestic("secrets", "rotate", "--database")
    assert done.returncode == 0, done.stdout + done.stderr
    assert on_host(ctx, "db-p1", f"sha256sum {DB_PASSWORD}") != before
    health = _health(lab, "web-p1")
    assert health["database"] == "ok", health
