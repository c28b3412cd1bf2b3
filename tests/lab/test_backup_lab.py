"""Backups on the real lab: restic to the DR site's repository, checks, restore verification.

Uses the session lab (tests/lab/conftest.py), converged with site.yml (which imports
plays/backup.yml). The corruption fault flips bytes in the primary repository's pack files on
bkp-a1's disk: `restic check` and the restore must both fail with a clear message.
"""

from __future__ import annotations

from pathlib import Path

from gestic.lab.host import host_dir
from gestic.procedures.backup.ops import agent, backup_now, check, verify_restore
from gestic.procedures.dr.plan import PLAN_FILE, load_plan

from .labkit import ROOT, Lab


def _packs(lab: Lab, service: str) -> list[Path]:
    state = lab.ctx.lab_stack.settings.state_dir
    data = host_dir(state, "bkp-a1") / "root" / "srv" / "backup" / f"bk-{service}" / "repo" / "data"
    return sorted(p for p in data.rglob("*") if p.is_file())


def test_backup_reaches_both_repositories_and_checks_clean(lab: Lab) -> None:
    ctx = lab.ctx
    first = backup_now(ctx, "cartera-db")
    assert first.data["snapshot"]
    assert first.data["files"] >= 2
    result = check(ctx, "cartera-db")
    assert result.ok, result.data
    assert [r["repository"] for r in result.data["repos"]] == ["alterno", "boveda"]
    maintain = agent(ctx, "bkp-a1", "maintain", "cartera-db")
    assert maintain.ok, maintain.data
    assert maintain.data["copied_to"] == ["boveda"], maintain.data
    vault = agent(ctx, "bkp-a1", "snapshots", "cartera-db", "--repo", "boveda")
    # restic 0.14 (bookworm) reports the short id after a backup; `restic copy` gives the copy
    # an id of its own and keeps the source's in `original`
    copied = {str(s.get("original", "")) for s in vault.data["snapshots"]}
    assert any(o.startswith(first.data["snapshot"]) for o in copied), vault.data["snapshots"]


def test_restore_verification_of_the_database_on_an_isolated_dr_host(lab: Lab) -> None:
    ctx = lab.ctx
    backup_now(ctx, "cartera-db")
    plan = load_plan(ROOT / PLAN_FILE, ctx.model)
    result = verify_restore(ctx, plan, "cartera-db")
    assert result.ok, result.error
    assert result.host == "db-a1"
    assert result.mode == "live"
    assert result.restore_s is not None
    assert result.restore_s > 0
    assert all(p["ok"] for p in result.probes)
    # the portfolio's two probes and the shared RPA ledger's (restored with it: gestic)
    assert [p["name"] for p in result.probes][2] == "la cola y el ledger de los robots volvieron"
    assert len(result.probes) == 3
    assert result.cleaned, result.leftovers


def test_restore_verification_without_dr_host_uses_the_backup_host(lab: Lab) -> None:
    ctx = lab.ctx
    backup_now(ctx, "transferencia")
    plan = load_plan(ROOT / PLAN_FILE, ctx.model)
    result = verify_restore(ctx, plan, "transferencia")
    assert result.ok, result.error
    assert (result.host, result.mode) == ("bkp-a1", "scratch")


def test_a_corrupted_repository_is_detected_by_check_and_restore(lab: Lab) -> None:
    ctx = lab.ctx
    backup_now(ctx, "cartera-db")
    packs = _packs(lab, "cartera-db")
    assert packs
    saved = {p: p.read_bytes() for p in packs}
    try:
        for pack in packs:
            raw = bytearray(saved[pack])
            middle = len(raw) // 2
            raw[middle : middle + 16] = bytes(b ^ 0xFF for b in raw[middle : middle + 16])
            pack.write_bytes(bytes(raw))
        result = check(ctx, "cartera-db")
        assert not result.ok
        alterno = result.data["repos"][0]
        assert alterno["repository"] == "alterno"
        assert not alterno["ok"]
        assert alterno["problems"], alterno
        plan = load_plan(ROOT / PLAN_FILE, ctx.model)
        verify = verify_restore(ctx, plan, "cartera-db")
        assert not verify.ok
        assert "restoring snapshot" in verify.error, verify.error
        assert "alterno" in verify.error, verify.error
        assert verify.cleaned, verify.leftovers
    finally:
        for pack, data in saved.items():
            pack.write_bytes(data)
    assert check(ctx, "cartera-db").ok
