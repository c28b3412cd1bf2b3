"""`gestic change record` on a throw-away git repository holding a copy of the project's model,
playbooks and production stack settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gestic.cli.main import cli
from gestic.errors import ChangeRecordError
from gestic.model import load_model
from gestic.procedures.change.record import build, match_hosts
from gestic.store.ledger import Ledger

from ....paths import ROOT


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Ana Pérez", "-c", "user.email=ana@example.org", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for part in ("inventory", "playbooks/plays", "playbooks/roles/identity"):
        shutil.copytree(ROOT / part, repo / part)
    (repo / "playbooks" / "site.yml").write_text((ROOT / "playbooks" / "site.yml").read_text())
    stack = repo / "stacks" / "production"
    stack.mkdir(parents=True)
    shutil.copy(ROOT / "stacks" / "production" / "Pulumi.production.yaml", stack)
    (repo / "pyproject.toml").write_text("[project]\nname = 'copy'\n")
    _git(repo, "init", "-q", "-b", "main")
    _commit(repo, "Base")
    return repo


def test_a_role_change_touches_the_hosts_of_its_plays_and_their_services(repo: Path) -> None:
    motd = repo / "playbooks" / "roles" / "identity" / "templates" / "motd.j2"
    motd.write_text(motd.read_text() + "Acceso solo autorizado.\n")
    head = _commit(repo, "Banner: authorised access only")
    rec = build(root=repo, rev_range="main~1..main", ledger=None)
    lab = load_model(repo / "inventory" / "lab", check_machine=False)
    assert rec.head == head
    assert [c.subject for c in rec.commits] == ["Banner: authorised access only"]
    assert [(f.status, f.path) for f in rec.files] == [
        ("M", "playbooks/roles/identity/templates/motd.j2")
    ]
    assert rec.impact.roles == {"identity"}
    assert rec.impact.hosts == set(lab.hosts)  # the identity play runs on all hosts
    assert {"portal", "cartera-db"} <= rec.impact.services
    assert (rec.risk, rec.tier) == ("high", 1)
    text = rec.markdown()
    assert "## Registro de cambio `main~1..main`" in text
    assert "**Riesgo:** alto (servicio de nivel 1)" in text
    assert "Ninguna ejecución registrada" in text
    assert f"git revert --no-edit {rec.base[:12]}..{head[:12]}" in text
    assert "gestic converge --limit bkp-a1,db-a1,db-p1,svc-p1,web-a1,web-p1" in text


def test_adding_a_production_host_previews_a_new_vm(repo: Path) -> None:
    hosts = repo / "inventory" / "production" / "hosts.yml"
    hosts.write_text(
        hosts.read_text()
        .replace(
            "        db-p1:\n",
            "        web-p3:\n          gestic_address: 172.20.10.13\n"
            "          gestic_owner: infraestructura\n        db-p1:\n",
            1,
        )
        .replace(
            "        web-p2:\n        web-a1:", "        web-p2:\n        web-p3:\n        web-a1:"
        )
    )
    services = repo / "inventory" / "production" / "group_vars" / "all" / "services.yml"
    services.write_text(
        services.read_text().replace("[web-p1, web-p2]", "[web-p1, web-p2, web-p3]")
    )
    _commit(repo, "Third portal host")
    rec = build(root=repo, rev_range="main~1..main", ledger=None)
    assert rec.impact.stacks == {"production"}
    assert "production: host web-p3 added (principal)" in rec.impact.model_changes
    assert "production: service portal changed" in rec.impact.model_changes
    assert "+ vsphere:index/virtualMachine:VirtualMachine::web-p3" in rec.impact.production_preview
    assert (rec.risk, rec.tier) == ("high", 1)
    english = rec.markdown("en")
    assert "### Production preview (resources)" in english
    assert "gestic policy check --stack production" in english


def test_verification_runs_come_from_the_ledger_at_the_range_commits(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "verify").mkdir()
    (repo / "verify" / "test_extra.py").write_text("def test_nothing() -> None:\n    pass\n")
    head = _commit(repo, "One more check")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setattr("gestic.store.ledger.current_commit", lambda: head)
    with ledger.record(kind="verify", target="lab") as run:
        run.summary = "42 checks, 0 failures, 0 errors"
    with ledger.record(kind="rpa.run", target="bot") as run:
        run.summary = "not a verification"
    monkeypatch.setattr("gestic.store.ledger.current_commit", lambda: "0" * 40)
    with ledger.record(kind="converge", target="lab") as run:
        run.summary = "another commit"
    rec = build(root=repo, rev_range="main~1..main", ledger=ledger)
    assert [(r.kind, r.summary) for r in rec.runs] == [
        ("verify", "42 checks, 0 failures, 0 errors")
    ]
    assert rec.impact.checks
    assert not rec.impact.hosts
    assert (rec.risk, rec.tier) == ("low", None)
    assert "| verify | succeeded |" in rec.markdown()


def test_bad_ranges_are_refused(repo: Path) -> None:
    with pytest.raises(ChangeRecordError, match=r"must look like BASE\.\.HEAD"):
        build(root=repo, rev_range="main", ledger=None)
    with pytest.raises(ChangeRecordError, match="'nope' is not a commit"):
        build(root=repo, rev_range="nope..main", ledger=None)


def test_host_patterns_resolve_like_ansible() -> None:
    model = load_model(ROOT / "inventory" / "lab", check_machine=False)
    assert match_hosts("db", model) == {"db-p1", "db-a1"}
    assert match_hosts("web:db:!alterno", model) == {"web-p1", "db-p1"}
    assert match_hosts("all:&principal", model) == {"web-p1", "db-p1", "svc-p1"}


def test_change_record_command_writes_markdown_and_records_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    motd = repo / "playbooks" / "roles" / "identity" / "templates" / "motd.j2"
    motd.write_text(motd.read_text() + "\n")
    _commit(repo, "Blank line")
    monkeypatch.setenv("GESTIC_ROOT", str(repo))
    monkeypatch.setenv("GESTIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GESTIC_LEDGER_URL", f"sqlite:///{tmp_path / 'cr.db'}")
    out = tmp_path / "record.md"
    result = CliRunner().invoke(
        cli, ["change", "record", "--range", "main~1..main", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("## Registro de cambio `main~1..main`")
    (run,) = Ledger(f"sqlite:///{tmp_path / 'cr.db'}").runs(kind="change.record")
    assert run.target == "main~1..main"
    assert run.status == "succeeded"
    assert run.details["roles"] == ["identity"]
    assert run.details["markdown"] == out.read_text()
