"""`gestic drift` on the real lab: a file changed by hand on a host is reported with its host,
task and diff; converging repairs it and the lab is clean again."""

from __future__ import annotations

import json

from gestic.procedures.change.drift import DriftReport, detect

from .labkit import ROOT, Lab, converge, on_host

HOST = "web-p1"
RECORD = "/etc/gestic/host.json"
TASK = "Write the host's record of its place in the model"


def _drift(
    lab: Lab, *, with_stack: bool = True, limit: str | None = None, tags: str | None = None
) -> DriftReport:
    ctx = lab.ctx
    ctx.access.write(ctx.model)
    return detect(
        stack=ctx.lab_stack if with_stack else None,
        playbooks_dir=ROOT / "playbooks",
        inventory=ctx.inventory / "hosts.yml",
        access=ctx.access,
        artifacts_dir=ctx.artifacts / "ansible",
        limit=limit,
        tags=tags,
    )


def test_a_converged_lab_has_no_drift(lab: Lab) -> None:
    report = _drift(lab)
    assert report.hosts_checked == len(lab.ctx.model.hosts)
    assert not report.drifted, report.markdown()


def _keys(report: DriftReport) -> set[tuple[str, str, str, str]]:
    return {(t.host, t.role, t.task, t.state) for t in report.tasks}


def test_a_hand_edited_file_is_reported_with_host_task_and_diff(lab: Lab) -> None:
    # the identity role's view of the host before the edit: nothing (other roles are left out,
    # so a role being written next door cannot blur what this test measures)
    before = _drift(lab, with_stack=False, limit=HOST, tags="identity")
    assert not before.drifted, before.markdown()
    original = json.loads(on_host(lab.ctx, HOST, f"cat {RECORD}"))
    tampered = {**original, "owner": "alguien-a-mano"}
    try:
        on_host(lab.ctx, HOST, f"echo '{json.dumps(tampered)}' | tee {RECORD} >/dev/null")
        report = _drift(lab, limit=HOST, tags="identity")
        assert report.drifted
        assert report.resources == []  # the stack itself did not drift
        assert report.hosts == [HOST]
        assert _keys(report) == {(HOST, "identity", TASK, "changed")}
        (task,) = report.tasks
        assert '"owner": "alguien-a-mano"' in task.diff
        assert '"owner": "infraestructura"' in task.diff
        assert f"`{HOST}: changed: identity : {TASK}`" in report.markdown()
    finally:
        repaired = converge(lab.ctx, limit=HOST, tags="identity")
        assert repaired.ok
        assert repaired.changed >= 1
    assert json.loads(on_host(lab.ctx, HOST, f"cat {RECORD}")) == original
    assert not _drift(lab, with_stack=False, limit=HOST, tags="identity").drifted
