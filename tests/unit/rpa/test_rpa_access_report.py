"""The access review bot (revision-accesos) on the environment's own access report: the
manifest's `access_report`, its seed with a real report_json built from the lab model, the
scheduler's published report (or its clear failure), and the real robots end to end on a
fresh report (`gestic rpa run revision-accesos --access-report fresh`)."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.cli.rpa_access import scheduled_seed
from gestic.cli.rpa_context import RpaContext
from gestic.cli.rpa_scheduled import scheduled_run
from gestic.environments.context import Context
from gestic.errors import AccessReportError, ManifestError, ModelError
from gestic.model import load_model
from gestic.paths import cache_dir
from gestic.procedures.access.published import AccessReports
from gestic.rpa.access_seed import seed_with_report, service_accounts
from gestic.rpa.manifest import load_bot, load_seed
from gestic.rpa.queue import BUSINESS, DONE, FAILED, WorkQueue
from gestic.rpa.robots_env import RobotsEnv
from gestic.rpa.runner import Runner
from gestic.rpa.schedule import Scheduler
from gestic.store.ledger import Ledger

from ...paths import LAB_INVENTORY, ROOT
from ..procedures.access.samples import UNREACHABLE, lab_model, lab_report_json
from ..procedures.access.test_access_published import collected_over_ssh

BOT = ROOT / "robots" / "revision-accesos"
FIXTURE = "devdata/work-items-in/revision-mensual/work-items.json"
#: What the bot decides on the lab's report from the sample records (tests/unit/data).
EXPECTED_DECISIONS = {
    ("db-a1", "mrodriguez"): "conservar",  # lgomez's access not applied there yet
    ("db-p1", "jperez"): "revocar",  # removed in the model, not yet locked on db-p1
    ("db-p1", "lgomez"): "conservar",
    ("db-p1", "mrodriguez"): "conservar",
    ("svc-p1", "antiguo"): "ya_bloqueada",  # undeclared, locked
    ("svc-p1", "cdiaz"): "conservar",
    ("svc-p1", "mrodriguez"): "conservar",
    ("web-a1", "jperez"): "ya_bloqueada",
    ("web-a1", "lgomez"): "conservar",
    ("web-a1", "mrodriguez"): "conservar",
    ("web-p1", "lgomez"): "conservar",
    ("web-p1", "mrodriguez"): "conservar",
    ("web-p1", "tmp-proveedor"): "revocar",  # undeclared, no HR record
}


# --- the manifest ---------------------------------------------------------------------------


@pytest.fixture
def bot_copy(tmp_path: Path) -> Path:
    target = tmp_path / "revision-accesos"
    shutil.copytree(BOT, target)
    return target


def _manifest_error(bot: Path, old: str, new: str) -> tuple[str, list[str]]:
    manifest = bot / "manifest.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        load_bot(bot)
    return str(err.value), text.splitlines()


def test_the_bot_declares_its_first_step_starts_from_the_access_report() -> None:
    bot = load_bot(BOT)
    assert bot.manifest.steps[0].access_report == "access-report.json"
    assert [s.access_report for s in bot.manifest.steps[1:]] == [None, None]


@pytest.mark.parametrize(
    ("old", "new", "step", "expected"),
    [
        pytest.param(
            "access_report: access-report.json",
            "access_report: reporte.json",
            0,
            "the seed's item(s) 0 have no file 'reporte.json' to replace",
            id="not-in-the-seed",
        ),
        pytest.param(
            "access_report: access-report.json",
            "access_report: ../access-report.json",
            0,
            "String should match pattern",
            id="a-path",
        ),
        pytest.param(
            "    suite: tasks/consumidor.robot\n",
            "    suite: tasks/consumidor.robot\n    access_report: access-report.json\n",
            1,
            "only the first step starts from the access report",
            id="not-the-first-step",
        ),
        pytest.param(
            "    access_report: access-report.json\n",
            "    access_report: access-report.json\n    inbox: pagos-banco\n",
            0,
            "a step starts from an inbox or from the access report, not both",
            id="with-an-inbox",
        ),
        pytest.param(
            "    seed: devdata/work-items-in/revision-mensual/work-items.json\n",
            "",
            0,
            "needs the step's seed",
            id="without-a-seed",
        ),
    ],
)
def test_access_report_errors_name_file_line_and_key(
    bot_copy: Path, old: str, new: str, step: int, expected: str
) -> None:
    message, lines = _manifest_error(bot_copy, old, new)
    keys = [i for i, t in enumerate(lines, 1) if t.strip().startswith("access_report:")]
    line = keys[step]  # the step's own access_report key
    assert f"{bot_copy / 'manifest.yaml'}:{line}: steps.{step}.access_report: " in message
    assert expected in message


# --- its seed -------------------------------------------------------------------------------


def test_the_seed_carries_the_environments_report_and_the_models_service_accounts() -> None:
    bot, model = load_bot(BOT), lab_model()
    report = lab_report_json()
    (item,) = seed_with_report(bot, report, model)
    (fixture,) = load_seed(BOT / FIXTURE)
    assert json.loads(item.files["access-report.json"]) == report
    assert item.files["access-report.json"] != fixture.files["access-report.json"]
    assert item.files["planta-activa.csv"] == fixture.files["planta-activa.csv"]  # HR's file
    assert item.payload["reporte_accesos"] == "access-report.json"
    # the model's accounts that are not people, not the fixture's list
    assert item.payload["cuentas_de_servicio"] == service_accounts(model)
    assert service_accounts(model) == [
        "atencion-usuario", "banco-aliado", "gestic", "rpa-colector",
    ]  # fmt: skip
    assert fixture.payload["cuentas_de_servicio"] != service_accounts(model)
    # the real report's shape, which the bot's library reads
    assert report["hosts"][UNREACHABLE] == {
        "site": "alterno", "recorded": False, "error": report["hosts"][UNREACHABLE]["error"],
        "updated_at": None, "accounts": [], "undeclared": [],
    }  # fmt: skip
    automation = [a for a in report["hosts"]["svc-p1"]["accounts"] if a["username"] == "gestic"]
    assert automation[0]["access"] == "automation"
    other = {**report, "environment": "produccion"}
    with pytest.raises(ManifestError, match="is of environment 'produccion', not 'lab'"):
        seed_with_report(bot, other, model)


# --- the scheduler: the newest published report, or a clear failure -------------------------


def test_the_bound_on_a_reports_age_is_a_setting_of_the_model(lab_inventory: Path) -> None:
    rpa = lab_inventory / "group_vars" / "all" / "rpa.yml"
    text = rpa.read_text(encoding="utf-8")
    assert "access_report_max_age_hours: 36\n" in text
    rpa.write_text(text.replace("max_age_hours: 36", "max_age_hours: 0"), encoding="utf-8")
    with pytest.raises(ModelError) as info:
        load_model(lab_inventory, check_machine=False)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "access_report_max_age" in t)
    assert f"{rpa}:{line}: gestic_rpa.access_report_max_age_hours: Input should be greater " \
        "than 0" in "\n".join(info.value.problems)  # fmt: skip


@pytest.fixture
def lab_rpa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RpaContext]:
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    rpa = RpaContext(Context.from_env(LAB_INVENTORY), ROOT / "robots")
    yield rpa
    rpa.close()


def test_a_scheduled_run_starts_from_the_newest_recent_report_or_fails_clearly(
    lab_rpa: RpaContext,
) -> None:
    bot = lab_rpa.bot("revision-accesos")
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    with pytest.raises(AccessReportError, match="no access report of environment 'lab'"):
        scheduled_seed(lab_rpa, bot, now=now)
    assert lab_rpa.settings.access_report_max_age_hours == 36
    store = lab_rpa.access_reports
    store.publish(lab_report_json(now=now - timedelta(hours=37)), source="ssh", now=now)
    with pytest.raises(AccessReportError) as old:
        scheduled_seed(lab_rpa, bot, now=now)
    assert "37.0 h ago" in str(old.value)
    assert "`gestic --env lab access report`" in str(old.value)
    (failed, _) = Ledger(lab_rpa.ctx.ledger.url).runs(kind="rpa.schedule")
    assert (failed.target, failed.status) == ("revision-accesos", FAILED)
    assert "make a fresh one on the controller" in failed.summary
    assert failed.details["access_report"]["source"] == "published"
    # never the fixture: a fresh enough report is what the run starts from
    fresh = store.publish(lab_report_json(now=now - timedelta(hours=3)), source="ssh", run_id=4)
    seeded = scheduled_seed(lab_rpa, bot, now=now)
    (item,) = seeded.items
    assert json.loads(item.files["access-report.json"]) == fresh.data
    assert seeded.details == {"access_report": {"source": "published", **{
        "published": fresh.describe()}}}  # fmt: skip


# --- the real robots ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def robots_env() -> RobotsEnv:
    return RobotsEnv.ensure(ROOT / "robots" / "requirements.txt", cache_dir())


def _decisions(report_dir: Path) -> dict[tuple[str, str], str]:
    with (report_dir / "revision-accesos.csv").open(encoding="utf-8") as handle:
        return {(r["host"], r["cuenta"]): r["decision"] for r in csv.DictReader(handle)}


def test_the_bot_reviews_a_real_report_built_from_the_lab_model(
    tmp_path: Path, robots_env: RobotsEnv
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        queue = WorkQueue(url)
        runner = Runner(queue=queue, ledger=ledger, env=robots_env, state=tmp_path / "state",
                        artifacts=tmp_path / "artifacts")  # fmt: skip
        bot = load_bot(BOT)
        report = lab_report_json()
        # an automation account with a person's uid: the record's `access` tells it apart
        (auto,) = [a for a in report["hosts"]["web-p1"]["accounts"] if a["access"] == "automation"]
        auto.update(username="automata", uid=1010)
        seed = seed_with_report(bot, report, lab_model())
        result = runner.run_bot(bot, seed=seed, variables={"TICKET": "CHG-2026-140"})
        assert result.ok, result.summary()
        assert result.queues["revision-accesos.cuentas"] == {
            DONE: len(EXPECTED_DECISIONS), "failed_business": 1,
        }  # fmt: skip
        (bad,) = queue.items(queue="revision-accesos.cuentas", states=[FAILED])
        assert (bad.exception_type, bad.exception_code) == (BUSINESS, "HOST_SIN_REGISTRO")
        assert UNREACHABLE in (bad.exception_message or "")
        queue.close()
    report_dir = next(r.output_dir for r in result.robots if r.step == "reporte")
    decisions = _decisions(report_dir)
    assert decisions.pop((UNREACHABLE, "")) == "rechazado"
    assert decisions == EXPECTED_DECISIONS  # the automation accounts are never reviewed
    proposal = yaml.safe_load((report_dir / "accesos-a-revocar.yml").read_text(encoding="utf-8"))
    accounts = proposal["gestic_accounts"]
    assert sorted(accounts) == ["jperez", "tmp-proveedor"]
    assert accounts["jperez"]["hosts"] == ["db-p1"]
    assert accounts["tmp-proveedor"]["reason"].startswith("SIN_VINCULO")


def test_the_scheduler_runs_the_bot_on_the_published_report_and_never_on_the_fixture(
    lab_rpa: RpaContext, robots_env: RobotsEnv
) -> None:
    bot = lab_rpa.bot("revision-accesos")
    runner = lab_rpa.runner(verbose=False)
    failures: list[Exception] = []
    calls = 0

    def clock() -> datetime:  # the first look plans the next run; every later one is past it
        nonlocal calls
        calls += 1
        return datetime(2026, 11, 24, tzinfo=UTC) + timedelta(days=0 if calls == 1 else 40)

    def serve() -> None:
        run_one = scheduled_run(lab_rpa, runner, workers=1, stop=threading.Event())
        scheduler = Scheduler(bots={bot.name: bot}, run=run_one, clock=clock,
                              on_error=lambda b, exc: failures.append(exc))  # fmt: skip
        assert scheduler.serve(max_runs=1) == 1

    serve()  # nothing published: the run fails, the fixture is not used
    assert [type(e) for e in failures] == [AccessReportError]
    assert lab_rpa.queue.items(bot=bot.name) == []
    now = datetime.now(UTC)
    made = lab_rpa.access_reports.publish(
        lab_report_json(now=now - timedelta(hours=1)), source="ssh"
    )
    calls = 0
    serve()
    assert len(failures) == 1
    runs = {r.status: r for r in Ledger(lab_rpa.ctx.ledger.url).runs(kind="rpa.schedule")}
    assert set(runs) == {"failed", "succeeded"}
    assert runs["succeeded"].details["access_report"]["published"]["id"] == made.id
    items = lab_rpa.queue.items(queue="revision-accesos.cuentas")
    reviewed = {(i.payload.get("host"), i.payload.get("cuenta")) for i in items}
    assert reviewed == {*EXPECTED_DECISIONS, (UNREACHABLE, None)}  # the fixture has no *-a1


def _run_args(*more: str) -> list[str]:
    return ["--inventory", str(LAB_INVENTORY), "rpa", "--robots", str(ROOT / "robots"),
            "run", "revision-accesos", *more]  # fmt: skip


def test_cli_run_on_a_fresh_report_then_on_the_published_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, robots_env: RobotsEnv
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    calls = collected_over_ssh(monkeypatch)
    result = CliRunner().invoke(cli, _run_args("--access-report", "fresh", "--var", "TICKET=T-1"))
    assert result.exit_code == 0, result.output
    assert calls == [LAB_INVENTORY / "hosts.yml"]
    assert "access report: collecting the records of 6 hosts over SSH" in result.output
    assert "access report: 5/6 hosts" in result.output
    assert "critical findings: revision-accesos reviews them" in result.output
    with Ledger(url) as ledger:
        (made,) = ledger.runs(kind="access.report")
        (run,) = ledger.runs(kind="rpa.run")
    assert run.status == "succeeded", run.summary
    about: dict[str, Any] = run.details["access_report"]
    assert about["source"] == "fresh"
    assert about["access_report_run"] == made.id
    assert about["published"]["run_id"] == made.id
    artifacts = tmp_path / "state" / "artifacts"
    written = json.loads((artifacts / "access" / "access-report.json").read_text("utf-8"))
    with AccessReports(url) as store:
        assert store.newest("lab").data == written  # type: ignore[union-attr]
    (reporte,) = (artifacts / "rpa" / "revision-accesos" / str(run.id)).glob("reporte-*")
    decisions = _decisions(reporte)
    assert decisions[("web-p1", "tmp-proveedor")] == "revocar"  # from the hosts, not the fixture
    # The same report, published: what a scheduled run on a bots host starts from.
    result = CliRunner().invoke(cli, _run_args("--access-report", "published"))
    assert result.exit_code == 0, result.output
    assert "revision-accesos: access report 1 of lab, made at" in result.output
    assert len(calls) == 1  # nothing collected again
    # Without the flag the fixture still seeds a local run; and the flags do not mix.
    result = CliRunner().invoke(cli, _run_args("--access-report", "fresh", "--no-seed"))
    assert result.exit_code == 1
    assert "--access-report seeds the first step" in str(result.exception)
    result = CliRunner().invoke(cli, _run_args("--access-report", "published", "--step", "reporte"))
    assert "--access-report seeds the first step" in str(result.exception)
    # A bots host cannot collect the records (no SSH to the hosts): refused before anything.
    monkeypatch.setenv("GESTIC_ROBOTS_ENV", str(robots_env.path))
    result = CliRunner().invoke(cli, _run_args("--access-report", "fresh"))
    assert "a bots host cannot do: use --access-report published" in str(result.exception)
    assert len(calls) == 1
    robots = ["--inventory", str(LAB_INVENTORY), "rpa", "--robots", str(ROOT / "robots")]
    result = CliRunner().invoke(cli, [*robots, "run", "conciliacion-pagos", "--access-report",
                                      "published"])  # fmt: skip
    assert "conciliacion-pagos: its first step does not start from an access report" in str(
        result.exception
    )
    with Ledger(url) as ledger:
        assert len(ledger.runs(kind="rpa.run")) == 2  # the refused runs recorded nothing
