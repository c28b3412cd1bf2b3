"""`gestic drift` on the real lab: a file changed by hand on a host is reported with its host,
task and diff; converging repairs it and the lab is clean again."""

from __future__ import annotations

import json

import pytest

from gestic.drift import MAX_DIFF_LINES, DriftReport, TaskDrift, _diff_text, _TaskCollector, detect

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


@pytest.mark.lab
def test_a_converged_lab_has_no_drift(lab: Lab) -> None:
    report = _drift(lab)
    assert report.hosts_checked == len(lab.ctx.model.hosts)
    assert not report.drifted, report.markdown()


def _keys(report: DriftReport) -> set[tuple[str, str, str, str]]:
    return {(t.host, t.role, t.task, t.state) for t in report.tasks}


@pytest.mark.lab
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


# ---- without a lab: how Ansible's events and diffs become the report ----------------------


def _event(kind: str, host: str, task: str, res: dict[str, object]) -> dict[str, object]:
    return {
        "event": kind,
        "event_data": {"host": host, "task": task, "role": "identity", "res": res},
    }


def test_changed_failed_and_unreachable_tasks_are_kept_ok_ones_are_not() -> None:
    collect = _TaskCollector()
    diff = {"before": "a\nb\n", "after": "a\nc\n", "before_header": RECORD, "after_header": "new"}
    collect(_event("runner_on_ok", HOST, TASK, {"changed": True, "diff": diff}))
    collect(_event("runner_on_ok", HOST, "Read something", {"changed": False}))
    collect(_event("runner_on_failed", "db-p1", "Check", {"msg": "boom"}))
    collect(_event("runner_on_unreachable", "db-a1", "Gather", {"msg": "no route"}))
    assert collect.hosts == {HOST, "db-p1", "db-a1"}
    assert [(t.host, t.state) for t in collect.tasks] == [
        (HOST, "changed"),
        ("db-p1", "failed"),
        ("db-a1", "unreachable"),
    ]
    assert collect.tasks[0].diff.splitlines() == [
        f"--- {RECORD}",
        "+++ new",
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
    ]
    assert collect.tasks[1].diff == "boom"


def test_state_diffs_read_as_key_value_lines() -> None:
    text = _diff_text(
        [
            {
                "before": {"path": "/x", "state": "absent"},
                "after": {"path": "/x", "state": "directory"},
            }
        ]
    )
    assert "-state: absent" in text
    assert "+state: directory" in text


def test_the_markdown_report_stays_within_a_pr_comment() -> None:
    long_diff = "\n".join(f"+line {i}" for i in range(500))
    tasks = [TaskDrift(host=f"h{i}", task="T", diff=long_diff) for i in range(200)]
    text = DriftReport(stack="lab", tasks=tasks, hosts_checked=200).markdown()
    assert len(text) < 51_000
    assert f"... ({500 - MAX_DIFF_LINES} more lines)" in text
    assert text.endswith("(report truncated: see `gestic drift --json` or the ledger)")
    clean = DriftReport(stack="lab", hosts_checked=6).markdown()
    assert clean.startswith("### Drift of `lab`: no drift")
