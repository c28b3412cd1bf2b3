"""The bots against the real lab: robots in the lab's network, the deployed portal, its database.

`gestic rpa run BOT --lab` starts each robot inside the lab's router namespace (the root
namespace has no route to the lab). actualizacion-datos types its devdata rows (the lab's
sample beneficiaries) into the portal's form on web-p1 with headless Chromium; the rows are
then read back from db-p1's `cartera` database, the portal's rejections must be BUSINESS
failures with their codes, and the queue and the ledger must hold the items and the robots.
conciliacion-pagos matches payments built from the lab's real loans against the portal API.
Every beneficiary the tests change is put back through the portal API in `finally`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gestic.environments.context import Context
from gestic.lab import names
from gestic.rpa.manifest import load_bot
from gestic.rpa.queue import APPLICATION, BUSINESS, DONE, FAILED, WorkQueue
from gestic.store.ledger import LEDGER_URL_ENV, Ledger

from .labkit import ROOT, Lab, authorized_partner_key, converge, on_host, sftp_as
from .rpakit import AS_SCHEDULER, BANK, BOTS_HOST, DATABASE, INBOX, lab_loans

PORTAL = "web-p1"
FIELDS = ("full_name", "email", "phone", "address")
ACTUALIZACION = ROOT / "robots" / "actualizacion-datos"
CONCILIACION = ROOT / "robots" / "conciliacion-pagos"
SOURCE = ACTUALIZACION / "devdata" / "work-items-in" / "actualizaciones" / "actualizaciones.csv"


def _address(ctx: Context, host: str) -> str:
    return str(ctx.model.hosts[host].address)


def _router_netns(ctx: Context) -> str:
    return names.router_netns(ctx.access.lab)


def _curl(ctx: Context, url: str, *extra: str) -> tuple[int, str]:
    """curl from the lab's router namespace (a client on the lab network)."""
    proc = subprocess.run(
        [
            "nsenter", f"--net={names.netns_path(_router_netns(ctx))}", "--",
            "curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", *extra, url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    body, _, status = proc.stdout.rpartition("\n")
    return int(status), body


def _api(ctx: Context, method: str, path: str, body: object | None = None) -> tuple[int, object]:
    extra = ["-X", method]
    if body is not None:
        extra += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    status, text = _curl(ctx, f"http://{_address(ctx, PORTAL)}{path}", *extra)
    return status, json.loads(text)


def _beneficiaries(ctx: Context, documents: list[str]) -> dict[str, dict[str, str]]:
    """The contact data of these beneficiaries as db-p1's `cartera` database holds it."""
    docs = ", ".join(f"'{d}'" for d in documents if d.isdigit())
    query = (
        "SELECT json_object_agg(document_number, json_build_object("
        "'full_name', full_name, 'email', email, 'phone', phone, 'address', address)) "
        f"FROM beneficiaries WHERE document_number IN ({docs})"
    )
    out = on_host(
        ctx, DATABASE, f"runuser -u postgres -- psql -X -At -d cartera -c {shlex.quote(query)}"
    )
    return json.loads(out.strip() or "null") or {}


def _gestic(*args: str) -> subprocess.CompletedProcess[str]:
    """The gestic command, on the session lab (the `lab` fixture exported its GESTIC_* env)."""
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.fixture
def ledger(lab: Lab) -> Iterator[tuple[Ledger, WorkQueue]]:
    """The session lab's run ledger and work-item queue (the `lab` fixture set the URL)."""
    url = os.environ[LEDGER_URL_ENV]
    runs, queue = Ledger(url), WorkQueue(url)
    yield runs, queue
    queue.close()
    runs.close()


@pytest.fixture
def restore_portal(lab: Lab) -> Iterator[dict[str, dict[str, str]]]:
    """The sample beneficiaries of the devdata as they were, put back after the test."""
    with SOURCE.open(newline="", encoding="utf-8") as handle:
        documents = [row["documento"] for row in csv.DictReader(handle)]
    before = _beneficiaries(lab.ctx, documents)
    yield before
    for doc, values in before.items():
        status, body = _api(lab.ctx, "PUT", f"/api/beneficiaries/{doc}", values)
        assert status == 200, body


def test_actualizacion_datos_updates_the_portal_on_web_p1(
    lab: Lab,
    ledger: tuple[Ledger, WorkQueue],
    restore_portal: dict[str, dict[str, str]],
) -> None:
    ctx = lab.ctx
    bot = load_bot(ACTUALIZACION)
    # The portal's address comes from the lab's inventory (gestic_rpa.variables), not the
    # manifest: a run in the lab (--lab) gets it, no --var needed.
    assert bot.manifest.variables["PORTAL_URL"] == ""
    with SOURCE.open(newline="", encoding="utf-8") as handle:
        rows = {row["documento"]: row for row in csv.DictReader(handle)}
    before = restore_portal
    # the devdata's three sample beneficiaries exist in the lab; its unknown one does not
    assert sorted(before) == ["52209458", "52314187", "52418916"]
    assert before["52418916"]["email"] != rows["52418916"]["email"]

    since = on_host(ctx, PORTAL, "date +%s").strip()
    proc = _gestic("rpa", "run", bot.name, "--lab")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    netns = _router_netns(ctx)
    assert f"in network namespace {netns}" in proc.stdout

    # --- what db-p1 holds now
    after = _beneficiaries(ctx, list(before))
    full = rows["52209458"]
    assert after["52209458"] == {f: full[f] for f in FIELDS}
    # a row without a name keeps the portal's; the portal normalises '+57 310 987 6543'
    assert after["52314187"] == {
        "full_name": before["52314187"]["full_name"],
        "email": rows["52314187"]["email"],
        "phone": "3109876543",
        "address": rows["52314187"]["address"],
    }
    # the row the portal rejected changed nothing, not even the fields that were valid
    assert after["52418916"] == before["52418916"]
    # ... and the portal answers with the same data (its API, through nginx)
    status, body = _api(ctx, "GET", "/api/beneficiaries/52314187")
    assert status == 200
    assert isinstance(body, dict)
    assert body["phone"] == "3109876543"
    # the robot went through the web form, from the lab network (gunicorn's access log:
    # the client address nginx forwards, the request, the status)
    journal = on_host(ctx, PORTAL, f"journalctl -q --no-pager -o cat -u portal --since @{since}")
    for doc, status in (("52209458", 303), ("52314187", 303), ("52418916", 422)):
        request = rf'^10\.213\.\S+ "POST /beneficiarios/{doc}/editar \S+" {status} '
        assert re.search(request, journal, re.M), (doc, status)
    assert re.search(r'"GET /beneficiarios/1099999999/editar \S+" 404 ', journal)

    # --- the queue: every record an item, the portal's answers as states and codes
    runs, queue = ledger
    run = runs.runs(kind="rpa.run", target=bot.name, limit=1)[0]
    assert run.status == "succeeded", run.summary
    assert run.details["netns"] == netns
    items = queue.items(queue=bot.manifest.queue, run_id=run.id)
    by_doc = {str(i.payload["documento"]): i for i in items}
    assert sorted(by_doc) == sorted(rows)
    assert [by_doc[d].state for d in ("52209458", "52314187")] == [DONE, DONE]
    failures = {
        doc: (i.state, i.exception_type, i.exception_code, i.attempts)
        for doc, i in by_doc.items()
        if i.state == FAILED
    }
    assert failures == {
        "52418916": (FAILED, BUSINESS, "DATOS_RECHAZADOS", 1),
        "1099999999": (FAILED, BUSINESS, "BENEFICIARIO_NO_ENCONTRADO", 1),
        "12ab": (FAILED, BUSINESS, "REGISTRO_INVALIDO", 1),
    }
    # the portal's own validation message, naming the field (not the value typed)
    assert by_doc["52418916"].exception_message == (
        "email: Escriba un correo electrónico válido, por ejemplo nombre@dominio.com."
    )
    assert not any(i.dead_letter for i in items)
    outputs = queue.items(queue=bot.final_queue, run_id=run.id)
    assert {o.payload["documento"]: o.payload["aviso"] for o in outputs} == {
        "52209458": "Datos actualizados correctamente.",
        "52314187": "Datos actualizados correctamente.",
    }
    assert run.details["queues"][bot.manifest.queue] == {DONE: 2, "failed_business": 3}

    # --- the ledger: one row per robot, each task passed, its logs kept
    robots = [r for r in runs.runs(kind="rpa.robot", limit=20) if r.details.get("run") == run.id]
    assert sorted(r.target for r in robots) == [f"{bot.name}/consumidor", f"{bot.name}/productor"]
    for robot in robots:
        assert robot.status == "succeeded", robot.summary
        assert [t["status"] for t in robot.details["tasks"]] == ["PASS"]
        assert (Path(robot.details["output_dir"]) / "output.xml").is_file()

    # --- how long each record took against the real portal (attempt start to release)
    documents = {i.id: str(i.payload["documento"]) for i in items}
    timings = {
        documents[a.item_id]: round((a.finished_at - a.started_at).total_seconds(), 2)
        for a in queue.attempts(list(documents))
        if a.finished_at is not None
    }
    consumer = next(r for r in robots if r.target.endswith("consumidor"))
    print(f"\nactualizacion-datos per item (s): {json.dumps(timings)}")
    print(f"consumer robot: {consumer.details['duration_s']} s; run: {run.duration_s} s")
    assert all(seconds < 60 for seconds in timings.values()), timings


def test_conciliacion_pagos_against_the_portal_api(
    lab: Lab, ledger: tuple[Ledger, WorkQueue], tmp_path: Path
) -> None:
    ctx = lab.ctx
    bot = load_bot(CONCILIACION)
    loans = lab_loans(ctx)
    assert set(loans) == {"current", "arrears", "paid_off"}
    current, arrears, paid = loans["current"], loans["arrears"], loans["paid_off"]
    assert float(current["saldo"]) > 100000
    excess = f"{float(current['saldo']) + 1:.2f}"
    header = "referencia,fecha,documento,credito,valor,banco"
    payments = [
        f"PL-0001,2026-11-02,{current['documento']},{current['credito']},100000,Banco de Bogotá",
        f"PL-0002,2026-11-02,{arrears['documento']},{arrears['credito']},50000,Bancolombia",
        f"PL-0003,2026-11-03,{paid['documento']},{paid['credito']},200000,Davivienda",
        f"PL-0004,2026-11-03,{current['documento']},{current['credito']},{excess},BBVA",
        f"PL-0005,2026-11-04,{current['documento']},ICX-1999-999999,300000,BBVA",
        "PL-0006,2026-11-04,1099999999,ICX-2020-000001,300000,Bancolombia",
        f"PL-0007,2026-11-05,{arrears['documento']},{arrears['credito']},abc,Davivienda",
    ]
    (tmp_path / "pagos-lab.csv").write_text("\n".join([header, *payments]) + "\n")
    work = tmp_path / "work-items.json"
    work.write_text(
        json.dumps(
            [{"payload": {"archivo": "pagos-lab.csv"}, "files": {"pagos-lab.csv": "pagos-lab.csv"}}]
        )
    )
    portal = f"http://{_address(ctx, PORTAL)}"
    proc = _gestic(
        "rpa", "run", bot.name, "--lab", "--input", str(work), "--var", f"CARTERA_URL={portal}"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    runs, queue = ledger
    run = runs.runs(kind="rpa.run", target=bot.name, limit=1)[0]
    assert run.status == "succeeded", run.summary
    assert run.details["netns"] == _router_netns(ctx)
    items = queue.items(queue=bot.manifest.queue, run_id=run.id)
    outcome = {
        str(i.payload["referencia"]): (i.state, i.exception_type, i.exception_code) for i in items
    }
    assert outcome == {
        "PL-0001": (DONE, None, None),
        "PL-0002": (DONE, None, None),
        "PL-0003": (FAILED, BUSINESS, "CREDITO_NO_VIGENTE"),
        "PL-0004": (FAILED, BUSINESS, "PAGO_EXCEDE_SALDO"),
        "PL-0005": (FAILED, BUSINESS, "CREDITO_NO_ENCONTRADO"),
        "PL-0006": (FAILED, BUSINESS, "CREDITO_NO_ENCONTRADO"),
        "PL-0007": (FAILED, BUSINESS, "PAGO_MALFORMADO"),
    }
    # the balances came from the portal API (the lab's database), not the CSV export
    results = {
        str(i.payload["referencia"]): i.payload
        for i in queue.items(queue="conciliacion-pagos.resultados", run_id=run.id)
    }
    assert float(results["PL-0001"]["saldo_anterior"]) == float(current["saldo"])
    report = next(
        r for r in runs.runs(kind="rpa.robot", limit=20)
        if r.details.get("run") == run.id and r.target.endswith("/reporte")
    )  # fmt: skip
    with zipfile.ZipFile(Path(report.details["output_dir"]) / "conciliacion.xlsx") as book:
        strings = "".join(book.read(n).decode() for n in book.namelist() if n.startswith("xl/"))
    assert current["credito"] in strings
    assert "CREDITO_NO_VIGENTE" in strings


def test_portal_outage_is_retried_dead_lettered_and_rerun_once_it_is_back(
    lab: Lab, ledger: tuple[Ledger, WorkQueue], tmp_path: Path
) -> None:
    """gunicorn stopped on web-p1 (nginx answers 502): APPLICATION, retried, then rerun."""
    ctx = lab.ctx
    robots = tmp_path / "robots"
    shutil.copytree(ACTUALIZACION, robots / ACTUALIZACION.name)
    manifest = robots / ACTUALIZACION.name / "manifest.yaml"
    text = manifest.read_text().replace("backoff_seconds: 30", "backoff_seconds: 0.5")
    manifest.write_text(text.replace("backoff_max_seconds: 600", "backoff_max_seconds: 1"))
    doc = "52523645"  # the fifth sample beneficiary
    work = tmp_path / "work-items.json"
    work.write_text(json.dumps([{"payload": {"documento": doc, "phone": "3005550101"}}]))
    before = _beneficiaries(ctx, [doc])[doc]
    _, queue = ledger
    # a lab reused by hand may hold an earlier run's failures: only this run's item counts
    earlier = {i.id for i in queue.items(queue="actualizacion-datos.registros")}
    try:
        on_host(ctx, PORTAL, "systemctl stop portal")
        status, _ = _curl(ctx, f"http://{_address(ctx, PORTAL)}/api/health")
        assert status == 502
        proc = _gestic(
            "rpa", "--robots", str(robots), "run", ACTUALIZACION.name, "--lab",
            "--step", "consumidor", "--input", str(work),
        )  # fmt: skip
        assert proc.returncode == 1  # a technical failure: the run says so
        queued = queue.items(queue="actualizacion-datos.registros", states=[FAILED])
        [item] = [i for i in queued if i.payload.get("documento") == doc and i.id not in earlier]
        assert (item.state, item.exception_type, item.exception_code) == (
            FAILED,
            APPLICATION,
            "PORTAL_NO_DISPONIBLE",
        )
        assert item.attempts == 3
        assert item.dead_letter
        assert _beneficiaries(ctx, [doc])[doc] == before
        # the portal is back: the dead letter is worked again and completes
        on_host(ctx, PORTAL, "systemctl start portal")
        _wait_healthy(ctx)
        proc = _gestic(
            "rpa", "--robots", str(robots), "rerun", ACTUALIZACION.name, "--failed", "--lab"
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert queue.get(item.id).state == DONE
        assert _beneficiaries(ctx, [doc])[doc]["phone"] == "3005550101"
    finally:
        on_host(ctx, PORTAL, "systemctl start portal")
        _wait_healthy(ctx)
        status, body = _api(ctx, "PUT", f"/api/beneficiaries/{doc}", before)
        assert status == 200, body


def _wait_healthy(ctx: Context, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = _curl(ctx, f"http://{_address(ctx, PORTAL)}/api/health")
        if status == 200:
            return
        assert time.monotonic() < deadline, f"the portal did not come back: {status} {body}"
        time.sleep(1)


def test_the_bots_host_schedules_and_runs_bots_from_its_offline_install(
    lab: Lab, restore_portal: dict[str, dict[str, str]]
) -> None:
    """svc-p1 got gestic and the robots' environment from the controller's wheelhouse only,
    and its own chromium: the browser bot runs there, against the portal the inventory names."""
    ctx = lab.ctx
    assert on_host(ctx, BOTS_HOST, "systemctl is-active gestic-rpa-scheduler").strip() == "active"
    journal = on_host(ctx, BOTS_HOST, "journalctl -u gestic-rpa-scheduler --no-pager -o cat")
    assert "scheduling 3 bots (America/Bogota)" in journal
    # A bot run on the host, as the service runs them: its own ledger, its own robots.
    run = f"COLUMNS=250 {AS_SCHEDULER} rpa run actualizacion-datos"
    out = on_host(ctx, BOTS_HOST, run, timeout=900)
    run_id = _last_run(out)
    items = _items_of_run(ctx, "actualizacion-datos", run_id, "actualizacion-datos.registros")
    states = sorted((str(i["state"]), str(i["exception_code"])) for i in items)
    assert states == [
        (DONE, "None"), (DONE, "None"), (FAILED, "BENEFICIARIO_NO_ENCONTRADO"),
        (FAILED, "DATOS_RECHAZADOS"), (FAILED, "REGISTRO_INVALIDO"),
    ], out  # fmt: skip
    after = _beneficiaries(ctx, ["52314187"])
    assert after["52314187"]["phone"] == "3109876543"


def _items_of_run(ctx: Context, bot: str, run_id: int, queue: str) -> list[dict[str, object]]:
    items = json.loads(on_host(ctx, BOTS_HOST, f"{AS_SCHEDULER} rpa items {bot} --json"))
    return [i for i in items if i["queue"] == queue and i["run_id"] == run_id]


def _last_run(out: str) -> int:
    found = re.findall(r"run (\d+)", out)
    assert found, out
    return int(found[-1])


def test_a_payments_file_the_bank_delivers_over_sftp_is_taken_once_and_reconciled(
    lab: Lab, tmp_path: Path
) -> None:
    """The bank puts a file in its SFTP inbox; the bots host takes it (as the collector, over
    SFTP, checking the transfer host's key), moves it to procesados and reconciles it against
    the portal whose address the inventory gives; the same file again is not worked twice."""
    ctx = lab.ctx
    current = lab_loans(ctx)["current"]
    name = f"pagos-{time.strftime('%Y%m%d')}-{os.getpid()}.csv"
    (tmp_path / name).write_text(
        "referencia,fecha,documento,credito,valor,banco\n"
        f"SF-0001,2026-12-01,{current['documento']},{current['credito']},1000,Banco de Bogotá\n"
        f"SF-0002,2026-12-01,{current['documento']},ICX-1999-999999,1000,Banco de Bogotá\n"
    )
    take = f"COLUMNS=250 {AS_SCHEDULER} rpa run conciliacion-pagos --from-inbox"
    with authorized_partner_key(ctx, BANK, tmp_path) as key:
        put = sftp_as(ctx, BOTS_HOST, BANK, key, f"put {tmp_path / name} /entrada/{name}\n")
        assert put.returncode == 0, put.stderr
        on_host(ctx, BOTS_HOST, f"touch -d '-2 min' {INBOX}/entrada/{name}")  # settled
        out = on_host(ctx, BOTS_HOST, take, timeout=900)
        assert "1 new file(s)" in out, out
        run_id = _last_run(out)
        assert on_host(ctx, BOTS_HOST, f"ls {INBOX}/entrada").split() == []
        assert name in on_host(ctx, BOTS_HOST, f"ls {INBOX}/procesados").split()
        # the bank sees what was taken, and cannot change it
        listed = sftp_as(ctx, BOTS_HOST, BANK, key, "ls /procesados\n")
        assert name in listed.stdout, listed.stdout + listed.stderr
        refused = sftp_as(ctx, BOTS_HOST, BANK, key, f"rm /procesados/{name}\n")
        assert refused.returncode != 0
        outcome = {
            str(i["payload"]["referencia"]): (i["state"], i["exception_code"])  # type: ignore[index]
            for i in _items_of_run(ctx, "conciliacion-pagos", run_id, "conciliacion-pagos.pagos")
        }
        assert outcome == {"SF-0001": (DONE, None), "SF-0002": (FAILED, "CREDITO_NO_ENCONTRADO")}
        # the same content under another name: moved, reported, not worked again
        again = sftp_as(ctx, BOTS_HOST, BANK, key, f"put {tmp_path / name} /entrada/copia-{name}\n")
        assert again.returncode == 0, again.stderr
        on_host(ctx, BOTS_HOST, f"touch -d '-2 min' {INBOX}/entrada/copia-{name}")
        second = on_host(ctx, BOTS_HOST, take, timeout=900)
        assert "0 new file(s), 1 already taken" in second, second
        assert (
            _items_of_run(ctx, "conciliacion-pagos", _last_run(second), "conciliacion-pagos.pagos")
            == []
        )
        assert f"copia-{name}" in on_host(ctx, BOTS_HOST, f"ls {INBOX}/procesados").split()


def test_a_run_on_the_bots_host_is_counted_by_the_controllers_report(
    lab: Lab, tmp_path: Path
) -> None:
    """The scheduler on svc-p1 and the controller share the ledger database on db-p1
    (gestic_rpa.ledger): a run made on the bots host, as the service runs it, is counted by
    `gestic rpa report` on the controller, which reaches the database only through an SSH
    port forward to svc-p1 (its GESTIC_LEDGER_URL unset: the environment's ledger is used)."""
    ctx = lab.ctx
    # the roles this touches are converged already: once more changes nothing
    again = converge(ctx, tags="database,rpa_scheduler", limit=f"{DATABASE},{BOTS_HOST}")
    assert again.ok
    assert again.changed == 0, again.changed_tasks
    env = {k: v for k, v in os.environ.items() if k != LEDGER_URL_ENV}
    env_file = on_host(ctx, BOTS_HOST, "cat /etc/gestic/rpa-scheduler.env")
    assert f"@{DATABASE}:5432/gestic?hostaddr={_address(ctx, DATABASE)}&sslmode=verify-full" in (
        env_file
    )
    assert on_host(ctx, BOTS_HOST, "systemctl is-active gestic-rpa-scheduler").strip() == "active"
    assert ctx.model.rpa is not None
    assert ctx.model.rpa.ledger is not None  # the lab declares its shared ledger
    period = datetime.now(ZoneInfo(ctx.model.rpa.timezone))

    def report(name: str) -> dict[str, object]:
        out = tmp_path / name
        proc = _gestic_env(
            env, "rpa", "report", "--period", f"{period:%Y-%m}", "--output", str(out)
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [json_file] = out.glob("*.json")
        bots: dict[str, object] = json.loads(json_file.read_text())["bots"]
        return bots

    def due(bots: dict[str, object]) -> int:
        entry = bots.get("revision-accesos")
        return int(entry["items_due"]) if isinstance(entry, dict) else 0

    before = due(report("before"))
    out = on_host(ctx, BOTS_HOST, f"{AS_SCHEDULER} rpa run revision-accesos --var TICKET=CHG-LAB-2")
    assert "robots: 3" in out, out
    on_host_items = json.loads(
        on_host(ctx, BOTS_HOST, f"{AS_SCHEDULER} rpa items revision-accesos --limit 1000 --json")
    )
    proc = _gestic_env(env, "rpa", "items", "revision-accesos", "--limit", "1000", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the same rows, read from the controller through the port forward
    assert {i["id"] for i in json.loads(proc.stdout)} == {i["id"] for i in on_host_items}
    run_id = max(i["run_id"] for i in on_host_items if i["run_id"] is not None)
    finished = [
        i for i in on_host_items
        if i["run_id"] == run_id and i["queue"] == "revision-accesos.cuentas"
        and i["state"] in (DONE, FAILED)
    ]  # fmt: skip
    assert finished
    assert due(report("after")) >= before + len(finished)
    # every port forward the commands opened was stopped with them
    forwards = subprocess.run(
        ["pgrep", "-f", f"ssh -F {ctx.access.ssh_config} -N"], capture_output=True, check=False
    )
    assert forwards.returncode == 1, forwards.stdout


def _gestic_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
