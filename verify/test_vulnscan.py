"""Every host: a recent lynis report (Pruebas de Vulnerabilidad) that reaches the minimum index."""

from __future__ import annotations

import pytest
from testinfra.host import Host as InfraHost

from gestic.model import Model
from gestic.procedures.vulnscan.report import load_threshold, parse_report

REPORT = "/var/log/lynis-report.dat"
# The role scans again once a report is 24 h old; twice that means converge has not run.
MAX_AGE_S = 48 * 3600


@pytest.fixture(scope="session")
def threshold(model: Model) -> int:
    return load_threshold(model)


def test_lynis_is_installed(host: InfraHost) -> None:
    assert host.package("lynis").is_installed


def test_report_exists_is_private_and_recent(host: InfraHost) -> None:
    report = host.file(REPORT)
    assert report.exists, f"{REPORT} is missing: the vulnscan play has not scanned this host"
    assert report.user == "root"
    assert report.mode & 0o007 == 0, f"{REPORT} is readable by everyone"
    age = int(host.check_output("date +%s")) - report.mtime.timestamp()
    assert age < MAX_AGE_S, f"{REPORT} is {age / 3600:.0f} h old"


def test_hardening_index_reaches_the_minimum(host: InfraHost, threshold: int) -> None:
    parsed = parse_report(host.file(REPORT).content_string, source=f"{host}:{REPORT}")
    assert parsed.hostname == host.backend.get_hostname()
    assert parsed.hardening_index >= threshold, (
        f"hardening index {parsed.hardening_index} < minimum {threshold}; warnings: "
        + ", ".join(f"{w.test_id} {w.message}" for w in parsed.warnings)
    )
