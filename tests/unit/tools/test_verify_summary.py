"""`gestic verify` cannot pass on nothing: a host on which no check ran fails the verification."""

from __future__ import annotations

from pathlib import Path

from gestic.tools.testinfra import _summary

CASE = (
    '<testcase classname="test_host" name="test_{check}[ssh://{host}]" time="0.1">{body}</testcase>'
)
SKIPPED = '<skipped type="pytest.skip" message="not in group web"/>'


def _junit(tmp_path: Path, cases: list[tuple[str, str, str]]) -> Path:
    body = "".join(CASE.format(check=c, host=h, body=b) for c, h, b in cases)
    skipped = sum(1 for *_, b in cases if "<skipped" in b)
    path = tmp_path / "verify.xml"
    path.write_text(
        f'<testsuites><testsuite name="pytest" tests="{len(cases)}" failures="0" errors="0" '
        f'skipped="{skipped}">{body}</testsuite></testsuites>'
    )
    return path


def test_every_host_checked_is_ok(tmp_path: Path) -> None:
    junit = _junit(tmp_path, [("a", "web-p1", ""), ("a", "db-p1", ""), ("b", "db-p1", SKIPPED)])
    result = _summary(junit, 1.0, ["db-p1", "web-p1"])
    assert result.ok, result.failed
    assert result.silent == []


def test_a_host_whose_every_check_skipped_fails(tmp_path: Path) -> None:
    junit = _junit(tmp_path, [("a", "web-p1", ""), ("a", "db-p1", SKIPPED)])
    result = _summary(junit, 1.0, ["db-p1", "web-p1"])
    assert not result.ok
    assert result.silent == ["db-p1"]
    assert "db-p1: no check ran on this host (all skipped or none collected)" in result.failed


def test_a_host_with_no_check_collected_fails(tmp_path: Path) -> None:
    result = _summary(_junit(tmp_path, [("a", "web-p1", "")]), 1.0, ["web-p1", "svc-p1"])
    assert result.silent == ["svc-p1"]
    assert not result.ok


def _props(*pairs: tuple[str, str]) -> str:
    items = "".join(f'<property name="{n}" value="{v}"/>' for n, v in pairs)
    return f"<properties>{items}</properties>"


def test_a_check_of_a_control_is_reported_with_its_id(tmp_path: Path) -> None:
    failure = _props(("control", "GBS-4.1")) + '<failure message="assert 5 &lt;= 4"/>'
    junit = _junit(tmp_path, [("sshd_limits", "web-p1", failure), ("a", "web-p1", "")])
    result = _summary(junit, 1.0, ["web-p1"])
    assert result.failed == ["GBS-4.1 test_host::test_sshd_limits[ssh://web-p1]"]
    assert result.disabled == []


def test_a_control_disabled_by_the_inventory_is_reported(tmp_path: Path) -> None:
    disabled = (
        _props(("control", "GBS-6.2"), ("control_disabled", "baseline_controls_disabled"))
        + '<skipped type="pytest.skip" message="GBS-6.2 disabled on web-p1 by the inventory"/>'
    )
    cases = [("core", h, disabled) for h in ("web-p1", "web-a1")]
    cases += [("other", "web-p1", SKIPPED), ("a", "web-p1", ""), ("a", "web-a1", "")]
    result = _summary(_junit(tmp_path, cases), 1.0, ["web-a1", "web-p1"])
    assert result.ok, result.failed
    # the check skipped for a reason of its own is not a disabled control
    assert result.disabled == ["GBS-6.2: web-a1, web-p1"]
