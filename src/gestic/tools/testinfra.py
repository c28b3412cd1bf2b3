"""Verify the hosts against the model with testinfra (pytest over SSH), and summarise the result."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gestic.errors import VerifyError
from gestic.model import Model
from gestic.model.controls import CONTROL_PROPERTY, DISABLED_PROPERTY
from gestic.tools.ssh import SshAccess


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    tests: int
    failures: int
    errors: int
    skipped: int
    duration_s: float
    failed: list[str] = field(default_factory=list)
    report: Path | None = None
    silent: list[str] = field(default_factory=list)
    """Hosts on which no check ran (none collected, or every one skipped): not verified."""
    disabled: list[str] = field(default_factory=list)
    """Baseline controls whose checks were skipped because the inventory disables them:
    "<id>: <host>, <host>"."""

    @property
    def ok(self) -> bool:
        return self.tests > 0 and not (self.failures or self.errors or self.silent)


def _checked_hosts(root: ET.Element) -> set[str]:
    """Hosts with at least one check that ran (passed or failed, not skipped)."""
    ran = set()
    for case in root.iter("testcase"):
        name = case.get("name", "")
        if "[ssh://" in name and case.find("skipped") is None:
            ran.add(name.rsplit("[ssh://", 1)[1].split("]", 1)[0])
    return ran


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def _check(case: ET.Element) -> str:
    """A check's result line: `<control id> <file>::<check>[ssh://<host>]` (no id: no control)."""
    control = _properties(case).get(CONTROL_PROPERTY)
    name = f"{case.get('classname', '')}::{case.get('name', '')}"
    return f"{control} {name}" if control else name


def _disabled(root: ET.Element) -> list[str]:
    """`<id>: <host>, <host>` for each control whose checks were skipped as disabled there."""
    hosts: dict[str, set[str]] = {}
    for case in root.iter("testcase"):
        props = _properties(case)
        name = case.get("name", "")
        if DISABLED_PROPERTY in props and "[ssh://" in name:
            host = name.rsplit("[ssh://", 1)[1].split("]", 1)[0]
            hosts.setdefault(props.get(CONTROL_PROPERTY, "?"), set()).add(host)
    return [f"{control}: {', '.join(sorted(h))}" for control, h in sorted(hosts.items())]


def _summary(junit: Path, duration: float, hosts: list[str] | None = None) -> VerifyResult:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {
        k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")
    }
    failed = [
        _check(case)
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    ran = _checked_hosts(root)
    silent = [h for h in hosts or [] if h not in ran]
    failed += [f"{h}: no check ran on this host (all skipped or none collected)" for h in silent]
    return VerifyResult(
        duration_s=duration,
        failed=failed,
        report=junit,
        silent=silent,
        disabled=_disabled(root),
        **counts,
    )


def workers(hosts: int) -> int:
    """How many pytest-xdist workers run the checks: two per core, at most one per host."""
    return max(1, min(hosts, 2 * (os.cpu_count() or 1)))


def check_hosts(model: Model, hosts: Iterable[str], *, where: Path) -> None:
    """VerifyError naming every one of `hosts` the model does not have, and the ones it has."""
    unknown = sorted(set(hosts) - set(model.hosts))
    if unknown:
        raise VerifyError(
            f"--host {', '.join(unknown)}: not a host of the model in {where} "
            f"(hosts: {', '.join(sorted(model.hosts))})"
        )


def run_verify(
    *,
    checks_dir: Path,
    inventory: Path,
    model: Model,
    access: SshAccess,
    artifacts_dir: Path,
    hosts: list[str] | None = None,
    stream: bool = True,
) -> VerifyResult:
    """Run the testinfra checks in `checks_dir` on every host (or `hosts`) of the lab."""
    check_hosts(model, hosts or [], where=inventory)
    targets = hosts or sorted(model.hosts)
    access.write(model)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    junit = artifacts_dir / f"verify-{int(time.time())}.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(checks_dir),
        "--hosts",
        ",".join(f"ssh://{h}" for h in targets),
        "--ssh-config",
        str(access.ssh_config),
        "--sudo",  # log in as the automation account, check as root
        # the checks wait on SSH round trips, not on the CPU: hosts are checked side by side
        "-n",
        str(workers(len(targets))),
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(checks_dir if checks_dir.is_dir() else checks_dir.parent),  # one file or all
        "-q",
        "--no-header",
        f"--junitxml={junit}",
    ]
    env = {**os.environ, "GESTIC_INVENTORY": str(inventory)}
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, check=False, capture_output=not stream, text=True)
    if not junit.is_file():
        raise VerifyError(f"testinfra did not run (exit {proc.returncode}): {proc.stderr or ''}")
    return _summary(junit, time.monotonic() - start, targets)
