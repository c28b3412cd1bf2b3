"""The real lab: applied by the Pulumi engine, reached by Ansible and testinfra, then destroyed.

Runs its own lab (own name, state dir and ledger) so it never touches the demo lab. Needs root,
the Pulumi engine (`nox -s engine`) and the Debian packages the nox sessions install; outside CI
it is skipped without root, in CI (CI=true) it fails instead of skipping (tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from gestic.context import Context
from gestic.converge import ConvergeResult, run_playbook
from gestic.lab import host as lab_host
from gestic.lab.status import host_statuses, leftovers
from gestic.verify import run_verify

from .conftest import LAB_INVENTORY, ROOT

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    state = tmp_path_factory.mktemp("state")
    env = {
        "GESTIC_STATE_DIR": str(state),
        "GESTIC_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "GESTIC_LAB_NAME": "t" + secrets.token_hex(2)[:3],
        "GESTIC_INVENTORY": str(LAB_INVENTORY),
        "GESTIC_ROOT": str(ROOT),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    context = Context.from_env()
    try:
        yield context
    finally:
        try:
            context.lab_stack.run("destroy")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _converge(ctx: Context, *, check: bool = False, limit: str | None = None) -> ConvergeResult:
    ctx.access.write(ctx.model)
    return run_playbook(
        playbooks_dir=ROOT / "playbooks",
        playbook="site.yml",
        inventory=ctx.inventory / "hosts.yml",
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "ansible",
        check=check,
        diff=check,
        limit=limit,
    )


def test_up_creates_every_host(ctx: Context) -> None:
    result = ctx.lab_stack.run("up")
    assert result.changes.get("create", 0) >= len(ctx.model.hosts)
    hosts = result.outputs["hosts"]
    assert set(hosts) == set(ctx.model.hosts)
    assert all(h["running"] for h in hosts.values())
    settings = ctx.lab_stack.settings
    statuses = host_statuses(ctx.model, lab=settings.lab, lab_state_dir=settings.state_dir)
    assert [s.name for s in statuses if not s.up] == []


def test_converge_reaches_every_host_and_is_idempotent(ctx: Context) -> None:
    first = _converge(ctx)
    assert first.ok, first.per_host
    assert set(first.per_host) == set(ctx.model.hosts)
    assert first.changed > 0
    second = _converge(ctx)
    assert second.ok
    assert second.changed == 0, second.changed_tasks
    check = _converge(ctx, check=True)
    assert check.ok
    assert check.changed == 0, check.changed_tasks


def test_verify_passes_on_every_host(ctx: Context) -> None:
    result = run_verify(
        checks_dir=ROOT / "verify",
        inventory=ctx.inventory,
        model=ctx.model,
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "verify",
        stream=False,
    )
    assert result.ok, result.failed
    assert result.tests >= 6 * len(ctx.model.hosts)


def test_second_up_changes_nothing(ctx: Context) -> None:
    result = ctx.lab_stack.run("up")
    assert result.changed == 0, result.changes


def test_refresh_notices_a_stopped_host_and_up_repairs_it(ctx: Context) -> None:
    settings = ctx.lab_stack.settings
    victim = "db-a1"
    lab_host.stop_host(state_dir=settings.state_dir, name=victim)
    unreachable = _converge(ctx, limit=victim)
    assert unreachable.per_host[victim].get("unreachable", 0) == 1
    refresh = ctx.lab_stack.run("refresh")
    assert refresh.changes.get("update", 0) == 1, refresh.changes
    assert ctx.lab_stack.recorded_running()[victim] is False
    repaired = ctx.lab_stack.run("up")
    assert repaired.changes.get("update", 0) == 1, repaired.changes
    assert _converge(ctx, limit=victim).ok


def test_destroy_leaves_nothing_behind(ctx: Context) -> None:
    settings = ctx.lab_stack.settings
    result = ctx.lab_stack.run("destroy")
    assert result.changes.get("delete", 0) >= len(ctx.model.hosts)
    rest = leftovers(lab=settings.lab, lab_state_dir=settings.state_dir)
    assert rest.clean, rest
    assert ctx.lab_stack.recorded_running() == {}
