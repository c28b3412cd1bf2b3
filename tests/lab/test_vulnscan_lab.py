"""The vulnscan play on the real lab: the minimum hardening index fails or passes the play."""

from __future__ import annotations

from typing import Any

from gestic.procedures.vulnscan.report import collect, load_threshold, to_document

from .labkit import Lab, converge

SCANNED = "web-a1"
"""The host these tests converge (one is enough: every host runs the same role, and the tests
before them changed /etc on every host, so each converge here scans again: ~40 s a host)."""


def _failures(lab: Lab, extravars: dict[str, Any]) -> tuple[Any, dict[str, list[str]]]:
    """Run the vulnscan play with `extravars`; return the result and each host's failed tasks."""
    failed: dict[str, list[str]] = {}
    result = converge(lab.ctx, tags="vulnscan", limit=SCANNED, extravars=extravars, failed=failed)
    return result, failed


def test_play_fails_when_the_minimum_is_above_the_achievable_index(lab: Lab) -> None:
    result, failed = _failures(lab, {"gestic_vulnscan": {"min_index": 100}})
    assert not result.ok
    assert result.failed_hosts == [SCANNED]
    for host, messages in failed.items():
        (message,) = messages
        assert message.startswith("Require the minimum hardening index: "), message
        assert f"{host}: lynis hardening index " in message
        assert "is below the minimum 100 (gestic_vulnscan.min_index)" in message
    assert result.changed == 0  # a scan is a read
    # with the repository's minimum the same reports pass, and are collected for the report
    ok, failed = _failures(lab, {})
    assert ok.ok, failed
    reports = lab.ctx.artifacts / "vulnscan"
    report = collect(lab.ctx.model, reports, threshold=load_threshold(lab.ctx.model))
    assert report.ok, to_document(report)["summary"]


def test_play_stops_on_a_bad_minimum_before_scanning(lab: Lab) -> None:
    result, failed = _failures(lab, {"gestic_vulnscan": {"min_index": 250}})
    assert result.failed_hosts == [SCANNED]
    for messages in failed.values():
        (message,) = messages
        assert message.startswith("Check the minimum hardening index before scanning"), message
        assert "must be an integer from 0 to 100, not '250'" in message
