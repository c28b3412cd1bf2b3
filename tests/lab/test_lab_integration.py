"""The real lab: applied by the Pulumi engine, reached by Ansible and testinfra, then destroyed.

Uses the session's own lab (the `lab` fixture: own name, state dir and ledger) so it never
touches the demo lab. Needs root, the Pulumi engine (`nox -s engine`) and the Debian packages
the nox sessions install; outside CI it is skipped without root, in CI (CI=true) it fails
instead of skipping (tests/lab/conftest.py).
"""

from __future__ import annotations

from gestic.lab import host as lab_host
from gestic.lab.status import host_statuses, leftovers
from gestic.tools.ansible.strategy import LINEAR

from .labkit import Lab, converge, verify


def test_up_created_every_host(lab: Lab) -> None:
    ctx = lab.ctx
    settings = ctx.lab_stack.settings
    statuses = host_statuses(ctx.model, lab=settings.lab, lab_state_dir=settings.state_dir)
    assert sorted(s.name for s in statuses if s.up) == sorted(ctx.model.hosts)
    assert ctx.lab_stack.recorded_running() == dict.fromkeys(ctx.model.hosts, True)


def test_converge_reached_every_host_and_is_idempotent(lab: Lab) -> None:
    first = lab.first_converge
    assert first.ok, first.per_host
    assert set(first.per_host) == set(lab.ctx.model.hosts)
    assert first.changed > 0
    second = converge(lab.ctx)
    assert second.ok
    assert second.changed == 0, second.changed_tasks
    # `--check --diff` on the converged lab reporting nothing: test_drift_lab.py (one run of
    # the whole site.yml in check mode is minutes on two cores; the suite makes it once)


def test_verify_passes_on_every_host(lab: Lab) -> None:
    result = verify(lab.ctx)
    assert result.ok, result.failed
    assert result.tests >= 6 * len(lab.ctx.model.hosts)


def test_second_up_changes_nothing(lab: Lab) -> None:
    result = lab.ctx.lab_stack.run("up")
    assert result.changed == 0, result.changes


def test_up_alone_repairs_a_host_stopped_by_hand(lab: Lab) -> None:
    ctx = lab.ctx
    settings = ctx.lab_stack.settings
    victim = "db-a1"
    lab_host.stop_host(state_dir=settings.state_dir, name=victim)
    assert ctx.lab_stack.recorded_running()[victim] is True  # the stack has not noticed yet
    unreachable = converge(ctx, limit=victim, tags="identity")
    assert unreachable.per_host[victim].get("unreachable", 0) == 1
    repaired = ctx.lab_stack.run("up")  # no `refresh` before it
    assert repaired.changes.get("update", 0) == 1, repaired.changes
    assert ctx.lab_stack.recorded_running()[victim] is True
    # reachable again and as the model says (its disk survived; the whole site on it is a
    # no-op that test_converge_reached_every_host_and_is_idempotent already proves)
    again = converge(ctx, limit=victim, tags="identity")
    assert again.ok, again.per_host
    assert again.changed == 0, again.changed_tasks


def test_the_stock_linear_strategy_finds_the_lab_converged(lab: Lab) -> None:
    """Mitogen is the default; ansible-core's own strategy must reach the same state."""
    result = converge(lab.ctx, tags="identity", strategy=LINEAR)
    assert result.ok, result.per_host
    assert set(result.per_host) == set(lab.ctx.model.hosts)
    assert result.changed == 0, result.changed_tasks


def test_destroy_leaves_nothing_behind(lab: Lab) -> None:
    ctx = lab.ctx
    settings = ctx.lab_stack.settings
    result = ctx.lab_stack.run("destroy")
    assert result.changes.get("delete", 0) >= len(ctx.model.hosts)
    rest = leftovers(lab=settings.lab, lab_state_dir=settings.state_dir)
    assert rest.clean, rest
    assert ctx.lab_stack.recorded_running() == {}
