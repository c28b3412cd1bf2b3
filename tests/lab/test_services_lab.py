"""The institutional services on the real lab: portal, cartera database and SFTP.

Clients act from the lab's router namespace (outside every host, like a user on the network)
and check the result on the hosts over SSH. Tests that change the lab (a partner key, an
updated phone number) put it back in `finally`, so the lab stays converged to the repository's
inventory.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gestic.environments.context import Context
from gestic.lab import names

from .labkit import Lab, authorized_partner_key, converge, declared_partners, keypair, on_host

# the first sample beneficiary (deterministic data: 52000000 + 1 * 104729)
DOC = "52104729"
NAME = "Valentina Martínez Vargas"
PARTNER = "ies-andina"
RETIRED = "prueba-retiro"
SSH_OPTS = [
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
]  # fmt: skip


def _router(
    ctx: Context, argv: list[str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the lab's router namespace: a client on the lab network."""
    ns = names.router_netns(ctx.access.lab)
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _address(ctx: Context, host: str) -> str:
    return str(ctx.model.hosts[host].address)


def _curl(ctx: Context, url: str, *extra: str) -> tuple[int, str]:
    proc = _router(ctx, ["curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", *extra, url])
    assert proc.returncode == 0, proc.stderr
    body, _, status = proc.stdout.rpartition("\n")
    return int(status), body


# ------------------------------------------------------------------ portal


@pytest.mark.parametrize(("web", "site"), [("web-p1", "principal"), ("web-a1", "alterno")])
def test_portal_api_answers_from_the_network(lab: Lab, web: str, site: str) -> None:
    base = f"http://{_address(lab.ctx, web)}"
    status, body = _curl(lab.ctx, f"{base}/api/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "database": "ok", "site": site, "host": web}
    status, body = _curl(lab.ctx, f"{base}/api/beneficiaries/{DOC}")
    assert status == 200, body
    assert json.loads(body)["full_name"] == NAME
    status, body = _curl(lab.ctx, f"{base}/api/loans?doc={DOC}")
    assert status == 200, body
    loans = json.loads(body)["loans"]
    assert loans
    assert all(re.fullmatch(r"ICX-\d{4}-\d{6}", loan["loan_number"]) for loan in loans)
    status, _ = _curl(lab.ctx, f"{base}/api/beneficiaries/1234567")
    assert status == 404


def test_portal_html_pages_from_the_network(lab: Lab) -> None:
    base = f"http://{_address(lab.ctx, 'web-p1')}"
    status, page = _curl(lab.ctx, f"{base}/")
    assert status == 200
    assert '<form id="buscar"' in page
    status, page = _curl(lab.ctx, f"{base}/buscar?documento={DOC}", "-L")
    assert status == 200
    assert NAME in page
    assert '<table id="creditos">' in page
    status, page = _curl(lab.ctx, f"{base}/buscar?documento=12ab")
    assert status == 400
    assert "entre 6 y 10 dígitos" in page


def test_portal_updates_reach_the_sites_database(lab: Lab, tmp_path: Path) -> None:
    ctx = lab.ctx
    base = f"http://{_address(ctx, 'web-p1')}"
    _, body = _curl(ctx, f"{base}/api/beneficiaries/{DOC}")
    before = json.loads(body)
    query = f"SELECT phone, email FROM beneficiaries WHERE document_number = '{DOC}'"
    psql = f'runuser -u postgres -- psql -X -At -d cartera -c "{query}"'
    try:
        # JSON API, partial update
        status, body = _curl(
            ctx,
            f"{base}/api/beneficiaries/{DOC}",
            "-X", "POST", "-H", "Content-Type: application/json",
            "--data", json.dumps({"phone": "+57 300 123 4567"}),
        )  # fmt: skip
        assert status == 200, body
        assert on_host(ctx, "db-p1", psql).strip().startswith("3001234567|")
        # the DR site's database is a different one: unchanged
        assert not on_host(ctx, "db-a1", psql).strip().startswith("3001234567|")
        # validation errors name the field and change nothing
        status, body = _curl(
            ctx,
            f"{base}/api/beneficiaries/{DOC}",
            "-X", "PUT", "-H", "Content-Type: application/json",
            "--data", json.dumps({"email": "no-es-correo"}),
        )  # fmt: skip
        assert status == 422
        assert set(json.loads(body)["fields"]) == {"email", "full_name", "phone", "address"}
        # HTML form with its CSRF token (cookie session)
        jar = tmp_path / "cookies.txt"
        _, page = _curl(ctx, f"{base}/beneficiarios/{DOC}/editar", "-c", str(jar))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token in the edit form"
        form = {
            "full_name": before["full_name"],
            "email": "valentina.actualizada@example.com",
            "phone": "3109876543",
            "address": before["address"],
            "csrf_token": token.group(1),
        }
        fields = [arg for k, v in form.items() for arg in ("--data-urlencode", f"{k}={v}")]
        url = f"{base}/beneficiarios/{DOC}/editar"
        status, page = _curl(ctx, url, "-b", str(jar), "-L", *fields)
        assert status == 200, page
        assert "Datos actualizados correctamente." in page
        assert on_host(ctx, "db-p1", psql).strip() == "3109876543|valentina.actualizada@example.com"
        # without the session's token: refused
        status, _ = _curl(ctx, url, *fields)
        assert status == 400
    finally:
        restore = {k: before[k] for k in ("full_name", "email", "phone", "address")}
        status, body = _curl(
            ctx,
            f"{base}/api/beneficiaries/{DOC}",
            "-X", "PUT", "-H", "Content-Type: application/json",
            "--data", json.dumps(restore),
        )  # fmt: skip
        assert status == 200, body


# -------------------------------------------------------------------- sftp


def _converge_sftp(ctx: Context, partners: list[dict[str, Any]] | None) -> None:
    extravars = None if partners is None else {"sftp_partners": partners}
    result = converge(ctx, limit="transfer", tags="sftp", extravars=extravars)
    assert result.ok, result.per_host


@pytest.fixture(scope="module")
def partner_key(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private key of the declared partner PARTNER, authorized for the module's tests."""
    with authorized_partner_key(lab.ctx, PARTNER, tmp_path_factory.mktemp("sftp")) as key:
        yield key


def _sftp(ctx: Context, key: Path, user: str, batch: str) -> subprocess.CompletedProcess[str]:
    target = f"{user}@{_address(ctx, 'svc-p1')}"
    return _router(ctx, ["sftp", "-i", str(key), *SSH_OPTS, "-b", "-", target], stdin=batch)


def test_sftp_upload_lands_in_entrada_and_is_logged(
    lab: Lab, partner_key: Path, tmp_path: Path
) -> None:
    ctx = lab.ctx
    name = f"prueba-{uuid.uuid4().hex[:8]}.csv"
    upload = tmp_path / name
    upload.write_text("documento;valor\n52104729;150000\n")
    size = upload.stat().st_size
    landed = f"/srv/sftp/{PARTNER}/entrada/{name}"
    try:
        proc = _sftp(ctx, partner_key, PARTNER, f"put {upload} /entrada/{name}\n")
        assert proc.returncode == 0, proc.stderr
        owner = on_host(ctx, "svc-p1", f"stat -c '%U %a %s' {landed}").split()
        assert owner == [PARTNER, "640", str(size)]
        log = on_host(ctx, "svc-p1", "journalctl -q --no-pager -o cat -t internal-sftp")
        assert f'close "/entrada/{name}" bytes read 0 written {size}' in log
        assert f"session opened for local user {PARTNER} from" in log
    finally:
        on_host(ctx, "svc-p1", f"rm -f {landed}")


def test_sftp_partner_cannot_leave_its_chroot(lab: Lab, partner_key: Path) -> None:
    ctx = lab.ctx
    batch = "\n".join(
        [
            "-get /etc/passwd /dev/null",  # the host's files are not there
            "-put /etc/hostname /salida/x",  # salida is read-only
            "-put /etc/hostname /x",  # the chroot itself is root's
            "cd /..",
            "pwd",
            "ls -1 /",
        ]
    )
    proc = _sftp(ctx, partner_key, PARTNER, batch + "\n")
    assert proc.returncode == 0, proc.stderr
    assert 'File "/etc/passwd" not found' in proc.stderr
    assert 'dest open "/salida/x": Permission denied' in proc.stderr
    assert 'dest open "/x": Permission denied' in proc.stderr
    assert "Remote working directory: /\n" in proc.stdout
    listing = proc.stdout.split("ls -1 /", 1)[1].split()
    assert sorted(listing) == ["/dev", "/entrada", "/salida"]


def test_sftp_partner_gets_no_shell_and_no_forwarding(lab: Lab, partner_key: Path) -> None:
    ctx = lab.ctx
    target = f"{PARTNER}@{_address(ctx, 'svc-p1')}"
    shell = _router(ctx, ["ssh", "-i", str(partner_key), *SSH_OPTS, target, "id"])
    assert shell.returncode != 0
    assert "uid=" not in shell.stdout
    assert "This service allows sftp connections only." in shell.stdout + shell.stderr
    tty = _router(ctx, ["ssh", "-tt", "-i", str(partner_key), *SSH_OPTS, target], stdin="id\n")
    assert "uid=" not in tty.stdout
    forward = _router(
        ctx, ["ssh", "-i", str(partner_key), *SSH_OPTS, "-W", "127.0.0.1:22", target], stdin=""
    )
    assert forward.returncode != 0
    assert "SSH-2.0" not in forward.stdout


def test_retired_partner_loses_access_and_keeps_its_files(lab: Lab, tmp_path: Path) -> None:
    ctx = lab.ctx
    key, public = keypair(tmp_path, "retired")
    declared = declared_partners(ctx)
    temporary = {"name": RETIRED, "description": "Prueba de retiro", "public_keys": [public]}
    upload = tmp_path / "entrega.txt"
    upload.write_text("entrega\n")
    unit = f"srv-sftp-{RETIRED.replace('-', chr(92) + 'x2d')}-dev-log.mount"
    try:
        _converge_sftp(ctx, [*declared, temporary])
        assert _sftp(ctx, key, RETIRED, f"put {upload} /entrada/entrega.txt\n").returncode == 0
        _converge_sftp(ctx, None)  # the repository no longer declares it
        again = converge(ctx, limit="transfer", tags="sftp")
        assert again.ok
        assert again.changed == 0, again.changed_tasks
        refused = _sftp(ctx, key, RETIRED, "ls /\n")
        assert refused.returncode != 0
        assert "Permission denied" in refused.stderr
        assert (
            on_host(ctx, "svc-p1", f"test -e /etc/ssh/sftp-keys/{RETIRED} || echo gone") == "gone\n"
        )
        expiry = on_host(ctx, "svc-p1", f"chage -l {RETIRED}")
        assert re.search(r"Account expires\s*: Jan 02, 1970", expiry), expiry
        kept = on_host(ctx, "svc-p1", f"cat /srv/sftp/{RETIRED}/entrada/entrega.txt")
        assert kept == "entrega\n"
    finally:
        # the test's account is not the repository's: remove it entirely
        on_host(
            ctx,
            "svc-p1",
            f"systemctl disable --now {shlex.quote(unit)} 2>/dev/null; "
            f"rm -f /etc/systemd/system/{shlex.quote(unit)}; systemctl daemon-reload; "
            f"userdel {RETIRED} 2>/dev/null; groupdel {RETIRED} 2>/dev/null; "
            f"rm -rf /srv/sftp/{RETIRED} /etc/ssh/sftp-keys/{RETIRED}; true",
        )
