"""Real bots run through the orchestrator: real robots (rpaframework) in their own environment,
the real queue in a SQLite ledger, real processes killed for real.

The robots' environment is built once into the cache (`gestic rpa env`) and reused.
"""

from __future__ import annotations

import dataclasses
import http.server
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gestic.errors import RpaError
from gestic.paths import cache_dir
from gestic.rpa.chaos import RobotKiller
from gestic.rpa.manifest import SeedItem, load_bot, load_seed
from gestic.rpa.queue import APPLICATION, BUSINESS, DONE, FAILED, WorkQueue
from gestic.rpa.results import BotRun, parse_output
from gestic.rpa.robots_env import RobotsEnv
from gestic.rpa.runner import Runner
from gestic.store.ledger import Ledger

from ...paths import ROOT, UNIT_DATA

TEST_BOTS = UNIT_DATA / "rpa" / "robots"


@pytest.fixture(scope="session")
def robots_env() -> RobotsEnv:
    return RobotsEnv.ensure(ROOT / "robots" / "requirements.txt", cache_dir())


@pytest.fixture
def runner(tmp_path: Path, robots_env: RobotsEnv) -> Iterator[Runner]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    queue = WorkQueue(url)
    yield Runner(
        queue=queue,
        ledger=ledger,
        env=robots_env,
        state=tmp_path / "state",
        artifacts=tmp_path / "artifacts",
    )
    queue.close()
    ledger.close()


def _items(*payloads: object) -> list[SeedItem]:
    return [SeedItem(payload=p, files={}) for p in payloads]


def _done_marks(marks: Path) -> list[int]:
    file = marks / "hechos.txt"
    return sorted(int(x) for x in file.read_text().split()) if file.exists() else []


def test_conciliacion_pagos_end_to_end(runner: Runner) -> None:
    bot = load_bot(ROOT / "robots" / "conciliacion-pagos")
    seed = load_seed(bot.root / "devdata/work-items-in/pagos-banco/work-items.json")
    result = runner.run_bot(bot, workers=2, seed=seed)
    assert result.ok, result.summary()
    payments = result.queues["conciliacion-pagos.pagos"]
    assert payments == {DONE: 5, "failed_business": 4}
    failed = runner.queue.items(queue="conciliacion-pagos.pagos", states=[FAILED])
    assert {i.exception_code for i in failed} == {
        "PAGO_MALFORMADO",
        "CREDITO_NO_ENCONTRADO",
        "CREDITO_NO_VIGENTE",
        "PAGO_EXCEDE_SALDO",
    }
    assert all(i.exception_type == BUSINESS and i.attempts == 1 for i in failed)
    malformed = next(i for i in failed if i.exception_code == "PAGO_MALFORMADO")
    assert "abc" in (malformed.exception_message or "")
    # Every payment's SLA clock runs from its creation by the producer.
    assert all(i.sla_due_at is not None for i in runner.queue.items(queue=bot.manifest.queue))
    # The report step wrote the workbook and the PDF summary into the run's artifacts.
    report_dir = next(r.output_dir for r in result.robots if r.step == "reporte")
    with zipfile.ZipFile(report_dir / "conciliacion.xlsx") as book:
        names = book.namelist()
        strings = "".join(book.read(n).decode() for n in names if n.startswith("xl/"))
    assert sum(n.startswith("xl/worksheets/sheet") for n in names) == 2
    assert "PB-0001" in strings
    assert "CREDITO_NO_VIGENTE" in strings
    assert (report_dir / "resumen-conciliacion.pdf").read_bytes().startswith(b"%PDF")
    # Robot logs kept, each task's status and time in the ledger.
    for robot in result.robots:
        assert (robot.output_dir / "output.xml").is_file()
        assert (robot.output_dir / "log.html").is_file()
    rows = runner.ledger.runs(kind="rpa.robot")
    assert len(rows) == len(result.robots) >= 3
    assert all(r.details["tasks"] and r.details["tasks"][0]["status"] == "PASS" for r in rows)
    run_row = runner.ledger.get(result.run_id)
    assert run_row.kind == "rpa.run"
    assert run_row.status == "succeeded"
    assert run_row.details["queues"]["conciliacion-pagos.pagos"]["done"] == 5


def test_malformed_payload_is_a_business_failure_and_the_run_goes_on(
    runner: Runner, tmp_path: Path
) -> None:
    bot = load_bot(TEST_BOTS / "prueba")
    marks = tmp_path / "marks"
    result = runner.run_bot(
        bot,
        seed=_items({"n": 1}, {"texto": "sin número"}, {"n": 3}),
        variables={"MARCAS": str(marks)},
    )
    assert result.queues["prueba.items"] == {DONE: 2, "failed_business": 1}
    assert result.ok  # a business exception is not a technical failure
    bad = runner.queue.items(queue="prueba.items", states=[FAILED])
    assert len(bad) == 1
    assert bad[0].exception_type == BUSINESS
    assert bad[0].exception_code == "PAYLOAD_INVALIDO"
    assert "sin número" in (bad[0].exception_message or "")
    assert _done_marks(marks) == [1, 3]


def test_application_failure_is_retried_then_dead_lettered_then_rerun(
    runner: Runner, tmp_path: Path
) -> None:
    bot = load_bot(TEST_BOTS / "prueba")
    marks = tmp_path / "marks"
    result = runner.run_bot(
        bot,
        seed=_items({"n": 1}, {"n": 2, "falla_tecnica": True}),
        variables={"MARCAS": str(marks)},
    )
    assert not result.ok
    item = runner.queue.items(queue="prueba.items", states=[FAILED])[0]
    assert item.exception_type == APPLICATION
    assert item.exception_code == "SERVICIO_CAIDO"
    assert item.attempts == 3
    assert item.dead_letter
    tries = runner.queue.attempts([item.id])
    assert [t.outcome for t in tries] == ["application"] * 3
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.5
    assert gaps[1] >= 1.0
    assert _done_marks(marks) == [1]
    # The data is fixed (the service is back): re-queue the dead letter and run again.
    assert runner.queue.requeue_failed(queue="prueba.items") == [item.id]
    runner.queue.save_payload(item.id, {"n": 2})
    again = runner.run_bot(bot, variables={"MARCAS": str(marks)}, kind="rpa.rerun")
    assert again.ok
    assert runner.queue.get(item.id).state == DONE
    assert _done_marks(marks) == [1, 2]


def test_robot_killed_mid_item_is_retried_after_its_lease_and_completes_once(
    runner: Runner, tmp_path: Path
) -> None:
    bot = load_bot(TEST_BOTS / "prueba")
    marks = tmp_path / "marks"
    outcome: list[BotRun] = []
    thread = threading.Thread(
        target=lambda: outcome.append(
            runner.run_bot(
                bot,
                seed=_items({"n": 1}, {"n": 2}, {"n": 3}),
                variables={"MARCAS": str(marks), "PAUSA": "1.5"},
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    started: list[Path] = []
    while not started and time.monotonic() < deadline:
        started = sorted(marks.glob("inicio-1-*")) if marks.exists() else []
        time.sleep(0.05)
    assert started, "the robot never started item 1"
    pid = int(started[0].name.split("-")[2])
    os.kill(pid, signal.SIGKILL)  # mid-item: item 1 is sleeping, not yet recorded
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert outcome
    result = outcome[0]
    assert result.queues["prueba.items"] == {DONE: 3}  # nothing lost
    assert _done_marks(marks) == [1, 2, 3]  # nothing done twice
    killed = [r for r in result.robots if r.killed]
    assert len(killed) == 1
    assert killed[0].rc == -signal.SIGKILL
    first = runner.queue.items(queue="prueba.items")[0]
    assert first.attempts == 2
    assert [t.outcome for t in runner.queue.attempts([first.id])] == ["abandoned", DONE]
    assert not result.ok  # a robot crashed: the run says so


def test_parallel_robots_share_the_queue_without_double_processing(
    runner: Runner, tmp_path: Path
) -> None:
    bot = load_bot(TEST_BOTS / "prueba")
    marks = tmp_path / "marks"
    n = 12
    result = runner.run_bot(
        bot,
        workers=4,
        seed=_items(*({"n": k} for k in range(n))),
        variables={"MARCAS": str(marks), "PAUSA": "0.3"},
    )
    assert result.ok
    assert result.queues["prueba.items"] == {DONE: n}
    assert _done_marks(marks) == list(range(n))
    pids = {p.name.split("-")[2] for p in marks.glob("inicio-*")}
    assert len(pids) >= 2  # several robots really worked at once
    workers = {i.worker for i in runner.queue.items(queue="prueba.items")}
    assert len(workers) >= 2


def test_robots_are_started_inside_the_network_namespace_asked_for(
    runner: Runner, tmp_path: Path
) -> None:
    bot = load_bot(TEST_BOTS / "noop")
    step = bot.manifest.steps[0]
    plain = runner.robot_command(bot, step, tmp_path, {})
    assert plain[0] == str(runner.env.python)
    inside = dataclasses.replace(runner, netns="gestic-lab").robot_command(bot, step, tmp_path, {})
    assert inside == ["nsenter", "--net=/run/netns/gestic-lab", "--", *plain]
    # A namespace that does not exist stops the run before anything is recorded or started.
    missing = dataclasses.replace(runner, netns="gestic-nolab0")
    with pytest.raises(RpaError, match="network namespace gestic-nolab0 does not exist"):
        missing.run_bot(bot, seed=_items({}))
    assert runner.ledger.runs() == []
    assert runner.queue.items() == []
    with pytest.raises(RpaError, match="invalid network namespace"):
        dataclasses.replace(runner, netns="../x").run_bot(bot)


def test_parse_output_reads_each_task(runner: Runner) -> None:
    bot = load_bot(TEST_BOTS / "noop")
    result = runner.run_bot(bot, seed=_items({}, {}))
    tasks = parse_output(result.robots[0].output_dir / "output.xml")
    assert [t.name for t in tasks] == ["Tomar Cada Item Sin Hacer Nada"]
    assert tasks[0].status == "PASS"
    assert tasks[0].elapsed_s >= 0


def _gestic(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gestic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_run_items_and_unavailable_database(tmp_path: Path, robots_env: RobotsEnv) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "GESTIC_STATE_DIR": str(state),
        "GESTIC_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "GESTIC_ROOT": str(ROOT),
        "COLUMNS": "200",
    }
    work = tmp_path / "in" / "work-items.json"
    work.parent.mkdir()
    work.write_text(json.dumps([{"payload": {"n": 7}}, {"payload": {"n": "siete"}}]))
    marks = tmp_path / "marks"
    proc = _gestic(
        "rpa", "--robots", str(TEST_BOTS), "run", "prueba", "--input", str(work),
        "--var", f"MARCAS={marks}", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prueba.items" in proc.stdout
    listed = _gestic("rpa", "--robots", str(TEST_BOTS), "items", "prueba", "--json", env=env)
    items = json.loads(listed.stdout)
    assert [(i["state"], i["exception_code"]) for i in items] == [
        ("done", None),
        ("failed", "PAYLOAD_INVALIDO"),
    ]
    # The database is unavailable at start: a clear error, nothing started or written.
    broken = {**env, "GESTIC_LEDGER_URL": f"sqlite:///{tmp_path / 'gone' / 'ledger.db'}"}
    other_state = tmp_path / "state2"
    broken["GESTIC_STATE_DIR"] = str(other_state)
    proc = _gestic("rpa", "--robots", str(TEST_BOTS), "run", "prueba", "--input", str(work),
                   env=broken)  # fmt: skip
    assert proc.returncode == 1
    assert "cannot open the work-item queue" in proc.stdout
    assert not (tmp_path / "gone").exists()
    assert not (other_state / "artifacts").exists()


def test_cli_lab_flag_needs_the_lab_up_and_lab_addresses_hint_at_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "GESTIC_STATE_DIR": str(state),
        "GESTIC_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "GESTIC_ROOT": str(ROOT),
        "GESTIC_LAB_NAME": "nolab9",  # never brought up
        "COLUMNS": "200",
    }
    proc = _gestic("rpa", "--robots", str(TEST_BOTS), "run", "noop", "--lab", env=env)
    assert proc.returncode == 1
    assert "the lab 'nolab9' is not up (no network namespace gestic-nolab9)" in proc.stdout
    assert not (state / "ledger.db").exists()  # stopped before the queue was even opened
    # Without --lab, a bot whose URLs are lab addresses is told how to reach them.
    proc = _gestic(
        "rpa", "--robots", str(TEST_BOTS), "run", "noop", "--no-seed",
        "--var", "PORTAL_URL=http://10.213.1.11", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PORTAL_URL=http://10.213.1.11 is a lab address" in proc.stdout
    assert "add --lab" in proc.stdout


def test_revision_accesos_proposes_removals_for_review(runner: Runner) -> None:
    bot = load_bot(ROOT / "robots" / "revision-accesos")
    seed = load_seed(bot.root / "devdata/work-items-in/revision-mensual/work-items.json")
    result = runner.run_bot(bot, seed=seed, variables={"TICKET": "CHG-2026-118"})
    assert result.ok, result.summary()
    assert result.queues["revision-accesos.cuentas"] == {DONE: 6, "failed_business": 1}
    bad = runner.queue.items(queue="revision-accesos.cuentas", states=[FAILED])
    assert [(i.exception_type, i.exception_code) for i in bad] == [(BUSINESS, "REGISTRO_INVALIDO")]
    report_dir = next(r.output_dir for r in result.robots if r.step == "reporte")
    proposal = yaml.safe_load((report_dir / "accesos-a-revocar.yml").read_text(encoding="utf-8"))
    accounts = proposal["gestic_accounts"]
    assert sorted(accounts) == ["jperez", "tmp-proveedor"]  # not gestic, not active staff
    assert accounts["jperez"]["hosts"] == ["db-p1", "web-p1"]
    assert accounts["jperez"]["state"] == "removed"
    assert accounts["jperez"]["ticket"] == "CHG-2026-118"
    table = (report_dir / "revision-accesos.csv").read_text(encoding="utf-8")
    assert "antiguo,ya_bloqueada" in table
    assert "mrodriguez,conservar" in table


PORTAL_FILES = ROOT / "playbooks" / "roles" / "portal" / "files"
#: The lab's first sample beneficiaries (playbooks/roles/database/files/sql/sample_data.sql):
#: document, full name, email, phone, address, city.
SAMPLE_BENEFICIARIES = (
    ("52209458", "Diego Hernández Sánchez", "diego.hernandez2@example.com", "3658697902",
     "Avenida 15 # 27-59", "Cali"),
    ("52314187", "José Pérez Ortiz", "jose.perez3@example.com", "3488046853",
     "Diagonal 22 # 40-88", "Barranquilla"),
    ("52418916", "Juan Rojas Pérez", "juan.rojas4@example.com", "3317395804",
     "Transversal 29 # 53-18", "Bucaramanga"),
)  # fmt: skip


class _MemoryRepository:
    """The portal's repository interface over a dict: the sample beneficiaries, no loans."""

    def __init__(self, beneficiary: type) -> None:
        stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.people = {
            doc: beneficiary(
                document_type="CC",
                document_number=doc,
                full_name=name,
                email=email,
                phone=phone,
                address=address,
                city=city,
                updated_at=stamp,
            )
            for doc, name, email, phone, address, city in SAMPLE_BENEFICIARIES
        }
        self.updates: list[tuple[str, dict[str, str]]] = []

    def ping(self) -> None:
        return None

    def find_beneficiary(self, document: str) -> object | None:
        return self.people.get(document)

    def loans_of(self, document: str) -> list[object] | None:
        return [] if document in self.people else None

    def update_beneficiary(self, document: str, changes: dict[str, str]) -> object | None:
        if document not in self.people:
            return None
        self.updates.append((document, dict(changes)))
        self.people[document] = dataclasses.replace(self.people[document], **changes)
        return self.people[document]


@pytest.fixture
def portal() -> Iterator[tuple[str, _MemoryRepository]]:
    """The real portal application (the role's files/portal, Flask) on a local port.

    The same pages, form, CSRF session and validation as on the lab's web-p1, over an
    in-memory repository instead of PostgreSQL; tests/lab/test_rpa_lab.py runs the bot against
    the deployed portal itself.
    """
    if os.environ.get("CI") != "true":  # in CI a missing Flask must fail, not skip
        pytest.importorskip("flask", reason="the portal application needs Flask (test extra)")
    sys.path.insert(0, str(PORTAL_FILES))
    try:
        from portal.app import create_app  # noqa: PLC0415
        from portal.config import Settings  # noqa: PLC0415
        from portal.domain import Beneficiary  # noqa: PLC0415
        from werkzeug.serving import make_server  # noqa: PLC0415
    finally:
        sys.path.remove(str(PORTAL_FILES))
    repo = _MemoryRepository(Beneficiary)
    settings = Settings(
        secret_key="test-secret-key-0123456789",
        site="principal",
        host_name="web-p1",
        cookie_secure=False,
        database=None,
    )
    server = make_server("127.0.0.1", 0, create_app(settings, repo), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", repo
    server.shutdown()
    server.server_close()


def test_actualizacion_datos_fills_the_portal_form_with_a_real_browser(
    runner: Runner, portal: tuple[str, _MemoryRepository]
) -> None:
    url, repo = portal
    bot = load_bot(ROOT / "robots" / "actualizacion-datos")
    seed = load_seed(bot.root / "devdata/work-items-in/actualizaciones/work-items.json")
    result = runner.run_bot(bot, seed=seed, variables={"PORTAL_URL": url})
    assert result.ok, result.summary()
    assert result.queues["actualizacion-datos.registros"] == {DONE: 2, "failed_business": 3}
    people = {doc: dataclasses.asdict(b) for doc, b in repo.people.items()}
    assert people["52209458"]["full_name"] == "Diego Hernández Sánchez"
    assert people["52209458"]["email"] == "diego.hernandez@correo.com.co"
    assert people["52209458"]["address"] == "Calle 10 # 20-30 Cali"
    # a record without a name keeps the portal's; the portal normalises the phone number
    assert people["52314187"]["full_name"] == "José Pérez Ortiz"
    assert people["52314187"]["phone"] == "3109876543"
    # rejected by the portal's validation: nothing changed
    assert people["52418916"]["email"] == "juan.rojas4@example.com"
    assert [doc for doc, _ in repo.updates] == ["52209458", "52314187"]
    failed = {
        i.exception_code: i.exception_message
        for i in runner.queue.items(queue="actualizacion-datos.registros", states=[FAILED])
    }
    assert set(failed) == {"DATOS_RECHAZADOS", "BENEFICIARIO_NO_ENCONTRADO", "REGISTRO_INVALIDO"}
    assert failed["DATOS_RECHAZADOS"] == (
        "email: Escriba un correo electrónico válido, por ejemplo nombre@dominio.com."
    )
    assert "1099999999" in (failed["BENEFICIARIO_NO_ENCONTRADO"] or "")
    outputs = [i.payload for i in runner.queue.items(queue=bot.final_queue)]
    assert {o["documento"]: o["aviso"] for o in outputs} == {
        "52209458": "Datos actualizados correctamente.",
        "52314187": "Datos actualizados correctamente.",
    }


def test_portal_down_is_an_application_failure_retried_then_dead_lettered(
    runner: Runner, tmp_path: Path
) -> None:
    copy = tmp_path / "actualizacion-datos"
    shutil.copytree(ROOT / "robots" / "actualizacion-datos", copy)
    manifest = copy / "manifest.yaml"
    text = manifest.read_text().replace("backoff_seconds: 30", "backoff_seconds: 0.2")
    manifest.write_text(text.replace("backoff_max_seconds: 600", "backoff_max_seconds: 0.4"))
    bot = load_bot(copy)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    record = {"documento": "52209458", "email": "a@b.co", "linea": 2}
    result = runner.run_bot(
        bot,
        seed=_items(record),
        from_step="consumidor",
        variables={"PORTAL_URL": f"http://127.0.0.1:{closed}"},
    )
    assert not result.ok
    item = runner.queue.items(queue="actualizacion-datos.registros")[0]
    assert item.exception_type == APPLICATION
    assert item.exception_code == "PORTAL_NO_DISPONIBLE"
    assert item.attempts == 3
    assert item.dead_letter


def test_robots_killed_at_random_leave_every_item_done_exactly_once(
    runner: Runner, tmp_path: Path
) -> None:
    # A copy of the test bot that tolerates the kills: an item may be hit several times.
    root = tmp_path / "prueba"
    shutil.copytree(TEST_BOTS / "prueba", root)
    manifest = yaml.safe_load((root / "manifest.yaml").read_text())
    n, kills = 40, 6
    manifest["max_attempts"] = 20
    # a slow start (a loaded machine) lets a kill land before a robot's first item: such
    # robots count towards the runaway guard, which this test is not about
    manifest["max_robot_failures"] = kills + 1
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    bot = load_bot(root)
    marks = tmp_path / "marks"
    killer = RobotKiller(kills=kills, min_gap_s=0.5, max_gap_s=1.5, seed=n).start()
    try:
        result = runner.run_bot(
            bot,
            workers=3,
            seed=_items(*({"n": k} for k in range(n))),
            variables={"MARCAS": str(marks), "PAUSA": "0.4"},
        )
    finally:
        killer.stop()
    assert len(killer.killed) == kills  # the faults were really injected
    assert len([r for r in result.robots if r.killed]) == kills
    assert result.queues["prueba.items"] == {DONE: n}  # nothing lost
    items = runner.queue.items(queue="prueba.items")
    attempts = runner.queue.attempts([i.id for i in items])
    for item in items:  # completed exactly once: one DONE attempt, the last one
        outcomes = [a.outcome for a in attempts if a.item_id == item.id]
        assert outcomes.count(DONE) == 1, (item.payload, outcomes)
        assert outcomes[-1] == DONE, (item.payload, outcomes)
    done = _done_marks(marks)
    assert sorted(set(done)) == list(range(n))  # every item's work was done
    # Work done twice only where a robot was killed after the work, before recording it.
    abandoned = {
        item.payload["n"]
        for item in items
        if any(a.item_id == item.id and a.outcome == "abandoned" for a in attempts)
    }
    assert {k for k in done if done.count(k) > 1} <= abandoned
    assert not result.ok  # robots crashed: the run says so


def _bot_with_suite(tmp_path: Path, suite: str, **manifest_changes: object) -> Path:
    """A copy of the test bot whose robots run `suite` (a Robot Framework text)."""
    root = tmp_path / "prueba"
    shutil.copytree(TEST_BOTS / "prueba", root)
    manifest = yaml.safe_load((root / "manifest.yaml").read_text())
    manifest.update(manifest_changes)
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (root / "tasks" / "trabajar.robot").write_text(suite)
    return root


EXITS_AT_ONCE = """*** Tasks ***
Salir Sin Tomar Nada
    Log    me voy sin tomar ningún ítem
"""

CRASHES_AT_START = """*** Settings ***
Library    RPA.Robocorp.WorkItems

*** Tasks ***
Fallar Al Arrancar
    Fail    no hay con qué arrancar
"""


@pytest.mark.parametrize(
    ("suite", "why"),
    [
        (EXITS_AT_ONCE, "exited while items were ready"),
        (CRASHES_AT_START, "exited with status 1: task 'Fallar Al Arrancar' failed"),
    ],
    ids=["exits-at-once", "crashes-at-start"],
)
def test_a_robot_that_finishes_nothing_is_restarted_with_backoff_then_the_run_fails(
    runner: Runner, tmp_path: Path, suite: str, why: str
) -> None:
    bot = load_bot(
        _bot_with_suite(
            tmp_path,
            suite,
            max_robot_failures=3,
            robot_backoff_seconds=0.5,
            robot_backoff_max_seconds=0.8,
        )
    )
    result = runner.run_bot(bot, seed=_items({"n": 1}, {"n": 2}))
    assert len(result.robots) == 3  # bounded: not thousands of robots
    assert result.duration_s >= 0.5 + 0.8  # the backoff between them (doubling, capped)
    assert all(r.finished_items == 0 for r in result.robots)
    assert result.queues["prueba.items"] == {"pending": 2}
    assert not result.ok
    assert result.gave_up is not None
    assert "3 robots in a row ended without finishing an item" in result.gave_up
    assert why in result.gave_up
    assert "2 items left outstanding" in result.summary()
    assert len(runner.ledger.runs(kind="rpa.robot")) == 3
    run_row = runner.ledger.get(result.run_id)
    assert run_row.status == "failed"
    assert "gave up on the step" in (run_row.summary or "")


def test_robots_that_make_progress_are_never_given_up_on(runner: Runner, tmp_path: Path) -> None:
    # One item per robot: each robot ends after its item, so robots come and go all run long.
    one_each = """*** Settings ***
Library    RPA.Robocorp.WorkItems
Library    Prueba.py    ${MARCAS}    ${PAUSA}

*** Variables ***
${MARCAS}    ${OUTPUT_DIR}
${PAUSA}     0

*** Tasks ***
Procesar Un Solo Item
    ${payload}=    Get Work Item Payload
    Procesar Item De Prueba    ${payload}
    Release Input Work Item    DONE
"""
    bot = load_bot(_bot_with_suite(tmp_path, one_each, max_robot_failures=1))
    marks = tmp_path / "marks"
    result = runner.run_bot(
        bot, seed=_items({"n": 1}, {"n": 2}, {"n": 3}), variables={"MARCAS": str(marks)}
    )
    assert result.ok, result.summary()
    assert len(result.robots) == 3
    assert [r.finished_items for r in result.robots] == [1, 1, 1]
    assert _done_marks(marks) == [1, 2, 3]


def test_a_robot_killed_at_its_step_timeout_says_so(runner: Runner, tmp_path: Path) -> None:
    root = _bot_with_suite(
        tmp_path, (TEST_BOTS / "prueba" / "tasks" / "trabajar.robot").read_text()
    )
    manifest = yaml.safe_load((root / "manifest.yaml").read_text())
    manifest["steps"][0]["timeout_minutes"] = 0.05  # 3 s
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    bot = load_bot(root)
    result = runner.run_bot(
        bot, seed=_items({"n": 1}), variables={"MARCAS": str(tmp_path / "m"), "PAUSA": "60"}
    )
    assert result.duration_s < 30
    [robot] = result.robots
    assert robot.timed_out
    assert (
        robot.problem()
        == f"robot {robot.output_dir.name} was killed at its step timeout (0.05 min)"
    )
    assert not result.ok
    assert "killed at its step timeout" in result.summary()
    row = runner.ledger.runs(kind="rpa.robot")[0]
    assert row.status == "failed"
    assert "killed at its step timeout" in (row.summary or "")


def test_cli_one_invalid_manifest_does_not_stop_the_other_bots(tmp_path: Path) -> None:
    robots = tmp_path / "robots"
    shutil.copytree(ROOT / "robots", robots)
    manifest = robots / "revision-accesos" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("sla_minutes:", "sla_minutos:"))
    env = {**os.environ, "GESTIC_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    listed = _gestic("rpa", "--robots", str(robots), "schedule", "--list", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "bot revision-accesos left out, its manifest is invalid" in listed.stdout
    assert f"{manifest}:" in listed.stdout  # where, to the line
    assert "conciliacion-pagos" in listed.stdout
    assert "actualizacion-datos" in listed.stdout
    bots = _gestic("rpa", "--robots", str(robots), "bots", env=env)
    assert bots.returncode == 1  # the inventory of bots says some are broken
    assert "1 bot manifests are invalid: revision-accesos" in bots.stdout
    run = _gestic("rpa", "--robots", str(robots), "run", "revision-accesos", env=env)
    assert run.returncode == 1
    assert "sla_minutos: Extra inputs are not permitted" in run.stdout


def test_conciliacion_codes_each_failure_by_what_failed(runner: Runner, tmp_path: Path) -> None:
    copy = tmp_path / "conciliacion-pagos"
    shutil.copytree(ROOT / "robots" / "conciliacion-pagos", copy)
    manifest = yaml.safe_load((copy / "manifest.yaml").read_text())
    manifest["max_attempts"] = 1  # one attempt each: the code is what this test reads
    (copy / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    bot = load_bot(copy)
    pago = {
        "referencia": "PB-9", "fecha": "2026-11-30", "documento": "1010101010",
        "credito": "ACC-2023-0001", "valor": "450000",
    }  # fmt: skip

    class OddAnswer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a number where a list of loans belongs
            body = b"5"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OddAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        odd = runner.run_bot(
            bot,
            seed=_items(pago),
            from_step="consumidor",
            variables={"CARTERA_URL": f"http://127.0.0.1:{server.server_address[1]}"},
        )
    finally:
        server.shutdown()
        server.server_close()
    missing = runner.run_bot(
        bot,
        seed=_items(pago),
        from_step="consumidor",
        variables={"CARTERA_CSV": str(tmp_path / "no-existe.csv")},
    )
    codes = {
        run.run_id: [i.exception_code for i in runner.queue.items(queue=bot.manifest.queue)
                     if i.run_id == run.run_id]
        for run in (odd, missing)
    }  # fmt: skip
    assert codes == {odd.run_id: ["ERROR_INESPERADO"], missing.run_id: ["CARTERA_NO_DISPONIBLE"]}
