"""`gestic verify` cannot pass on nothing: a host on which no check ran fails the verification."""

from __future__ import annotations

from pathlib import Path

from gestic.verify import _summary

CASE = (
    '<testcase classname="test_host" name="test_{check}[ssh://{host}]" time="0.1">{body}</testcase>'
)
SKIPPED = '<skipped type="pytest.skip" message="not in group web"/>'


def _junit(tmp_path: Path, cases: list[tuple[str, str, str]]) -> Path:
    body = "".join(CASE.format(check=c, host=h, body=b) for c, h, b in cases)
    skipped = sum(1 for *_, b in cases if b)
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
