"""The DR plan (dr/plan.yml): validation against the model, with file and line in every error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gestic.errors import PlanError
from gestic.model import Model, load_model
from gestic.procedures.dr.plan import PLAN_FILE, load_plan

from ....paths import ROOT


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(ROOT / "inventory" / "lab", check_machine=False)


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "plan.yml"
    file.write_text(text)
    return file


def _edited(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load((ROOT / PLAN_FILE).read_text())
    edit(data)  # type: ignore[operator]
    return _write(tmp_path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _problems(file: Path, model: Model) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan(file, model)
    return info.value.problems


def test_the_repository_plan_is_valid(model: Model) -> None:
    plan = load_plan(ROOT / PLAN_FILE, model)
    assert plan.ordered_services() == ["cartera-db", "rpa", "portal"]
    assert plan.restored_services() == ["cartera-db", "portal"]
    assert [w.name for w in plan.waves] == ["datos", "automatizacion", "aplicaciones"]
    assert plan.wave_of("rpa").after == ("datos",)
    assert plan.dependency_closure(["cartera-db"]) == ["cartera-db", "rpa", "portal"]
    assert plan.dependency_closure(["portal"]) == ["portal"]
    assert plan.critical_path("portal") == ["cartera-db", "portal"]
    assert [e.name for e in plan.endpoints_of("portal")] == ["portal.icetex.lab"]


def test_waves_that_need_only_done_waves_run_in_one_batch(model: Model) -> None:
    plan = load_plan(ROOT / PLAN_FILE, model)
    batches = [[w.name for w in batch] for batch in plan.wave_batches()]
    assert batches == [["datos"], ["automatizacion", "aplicaciones"]]


def test_a_wave_after_a_wave_of_the_same_level_waits_for_it(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["waves"][2]["after"] = ["datos", "automatizacion"]

    plan = load_plan(_edited(tmp_path, edit), model)
    batches = [[w.name for w in batch] for batch in plan.wave_batches()]
    assert batches == [["datos"], ["automatizacion"], ["aplicaciones"]]


def test_unknown_service_is_named_with_file_and_line(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["waves"][0]["services"].append("nomina")
        data["services"]["nomina"] = dict(data["services"]["cartera-db"])

    file = _edited(tmp_path, edit)
    problems = _problems(file, model)
    lines = file.read_text().splitlines()
    hit = [p for p in problems if "unknown service 'nomina'" in p]
    assert hit, problems
    where = hit[0].split(": ", 1)[0]
    assert where.startswith(f"{file}:")
    assert "nomina" in lines[int(where.rsplit(":", 1)[1]) - 1]


def test_wave_dependency_on_a_later_wave_is_rejected(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["waves"][0]["after"] = ["aplicaciones"]

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("waves.0.after.0" in p and "comes later" in p for p in problems), problems


def test_unknown_wave_dependency_is_rejected(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["waves"][1]["after"] = ["almacenamiento"]

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("unknown wave 'almacenamiento'" in p for p in problems), problems


def test_service_depending_on_a_later_wave_is_rejected(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["waves"][0]["services"], data["waves"][1]["services"] = ["portal"], ["cartera-db"]

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("depends on 'cartera-db'" in p and "does not run after" in p for p in problems)


def test_missing_target_names_the_service_line(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        del data["services"]["portal"]["rto_minutes"]

    file = _edited(tmp_path, edit)
    problems = _problems(file, model)
    hit = [p for p in problems if "missing required key 'rto_minutes'" in p]
    assert hit, problems
    line = int(hit[0].split(": ", 1)[0].rsplit(":", 1)[1])
    assert file.read_text().splitlines()[line - 1].strip() == "portal:"


def test_target_looser_than_the_catalogue_is_rejected(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["services"]["cartera-db"]["rpo_minutes"] = 600

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("RPO target 600 min is looser than the model's 60" in p for p in problems)


def test_every_model_service_is_planned_or_excluded(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        del data["excluded"]["registros"]

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("'registros' of the model is neither planned nor" in p for p in problems)


def test_probe_on_data_that_is_not_backed_up_is_rejected(tmp_path: Path, model: Model) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        data["services"]["portal"]["probes"][1]["path"] = "/etc/passwd"

    problems = _problems(_edited(tmp_path, edit), model)
    assert any("/etc/passwd is under none of the backed-up paths" in p for p in problems)


def test_invalid_yaml_names_the_line(tmp_path: Path, model: Model) -> None:
    file = _write(tmp_path, "version: 1\nwaves: [\n")
    problems = _problems(file, model)
    assert problems[0].startswith(f"{file}:3: invalid YAML"), problems  # where it ran out


def test_host_loss_needs_a_known_host_and_recovers_only_what_ran_there(model: Model) -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    from gestic.errors import DrillError  # noqa: PLC0415
    from gestic.procedures.dr.drill import lost_hosts, scope  # noqa: PLC0415

    ctx: Any = SimpleNamespace(model=model)
    with pytest.raises(DrillError, match="host-loss needs --host"):
        lost_hosts(ctx, "host-loss", None)
    with pytest.raises(DrillError, match="unknown host 'web-p9'"):
        lost_hosts(ctx, "host-loss", "web-p9")
    plan = load_plan(ROOT / PLAN_FILE, model)
    assert lost_hosts(ctx, "host-loss", "web-p1") == ["web-p1"]
    assert scope(ctx, plan, ["web-p1"]) == {"portal": "web-a1"}
    # the database's dependents come back with it (they must be pointed at the recovered one)
    assert list(scope(ctx, plan, ["db-p1"])) == ["cartera-db", "rpa", "portal"]
    assert set(lost_hosts(ctx, "site-loss", None)) == {"web-p1", "db-p1", "svc-p1"}
    # the RPA service moves to the DR site's bots host when the principal's is lost
    assert scope(ctx, plan, ["svc-p1"]) == {"rpa": "web-a1"}
    site = scope(ctx, plan, lost_hosts(ctx, "site-loss", None))
    assert site == {"cartera-db": "db-a1", "portal": "web-a1", "rpa": "web-a1"}


# --- the RPA service (kind: rpa) and the shared ledger's probe ---------------------------------


def test_production_keeps_a_valid_plan_without_the_ledger_probe() -> None:
    production = load_model(ROOT / "inventory" / "production", check_machine=False)
    plan = load_plan(ROOT / PLAN_FILE, production)
    assert [p.name for p in plan.services["cartera-db"].probes if p.type == "sql"] == [
        "la cartera responde",
        "los créditos están completos",
    ]
    from gestic.procedures.dr.plan import service_hosts  # noqa: PLC0415

    assert service_hosts(production, plan.services["rpa"]) == (["svc-p1"], ["rpa-a1"])


def test_the_lab_plan_proves_the_ledger_came_back(model: Model) -> None:
    plan = load_plan(ROOT / PLAN_FILE, model)
    [probe] = [p for p in plan.services["cartera-db"].probes if p.type == "sql" and p.requires]
    assert probe.type == "sql"
    assert probe.database == "gestic"
    assert [p.type for p in plan.services["rpa"].probes] == ["unit", "ledger"]


def _rpa(data: dict[str, Any]) -> dict[str, Any]:
    rpa: dict[str, Any] = data["services"]["rpa"]
    return rpa


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (
            lambda d: _rpa(d).update(depends_on=[]),
            "services.rpa.depends_on",
            "it must depend on it (depends_on: [cartera-db])",
        ),
        (
            lambda d: _rpa(d)["probes"].append(
                {"name": "x", "type": "sql", "database": "gestic", "query": "SELECT 1"}
            ),
            "services.rpa.probes.2.type",
            "the RPA service restores nothing itself",
        ),
        (
            lambda d: d["services"]["portal"]["probes"].append(
                {"name": "x", "type": "unit", "unit": "nginx.service"}
            ),
            "services.portal.probes.2.type",
            "a unit probe runs only on the RPA service",
        ),
        (
            lambda d: d["services"]["cartera-db"]["probes"][2].update(database="cartera"),
            "services.cartera-db.probes.2.requires",
            "a shared-ledger probe queries the ledger's database 'gestic'",
        ),
        (
            lambda d: _rpa(d)["probes"][1].update(table="Robot Items"),
            "services.rpa.probes.1.table",
            "String should match pattern",
        ),
        (
            lambda d: d["endpoints"].update({"robots.icetex.lab": {"service": "rpa"}}),
            "endpoints.robots.icetex.lab.service",
            "no catalogue hosts an endpoint name could follow",
        ),
    ],
)
def test_a_bad_rpa_entry_names_file_key_and_line(
    tmp_path: Path, model: Model, edit: Any, where: str, message: str
) -> None:
    file = _edited(tmp_path, edit)
    problems = _problems(file, model)
    hit = [p for p in problems if where in p and message in p]
    assert hit, problems
    line = int(hit[0].split(": ", 1)[0].rsplit(":", 1)[1])
    assert line > 1, hit


def test_the_rpa_kind_is_not_a_catalogue_service(tmp_path: Path, model: Model) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["services"]["portal"]["kind"] = "rpa"

    problems = _problems(_edited(tmp_path, edit), model)
    assert any(
        "services.portal.kind" in p and "is a service of gestic_services" in p for p in problems
    ), problems


def test_the_rpa_service_needs_a_bots_host_on_the_dr_site(tmp_path: Path, model: Model) -> None:
    bots = {n: h for n, h in model.hosts.items() if n != "web-a1" or "bots" not in h.groups}
    bots["web-a1"] = model.hosts["web-a1"].model_copy(
        update={"groups": tuple(g for g in model.hosts["web-a1"].groups if g != "bots")}
    )
    without = model.model_copy(update={"hosts": bots})
    problems = _problems(ROOT / PLAN_FILE, without)
    assert any("needs a bots host (group `bots`) on a dr site" in p for p in problems), problems
