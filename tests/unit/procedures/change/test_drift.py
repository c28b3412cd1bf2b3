"""How Ansible's events and diffs become the drift report (no lab: see tests/lab/)."""

from __future__ import annotations

from gestic.procedures.change.drift import (
    MAX_DIFF_LINES,
    DriftReport,
    TaskDrift,
    _diff_text,
    _TaskCollector,
)

HOST = "web-p1"
RECORD = "/etc/gestic/host.json"
TASK = "Write the host's record of its place in the model"


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
