"""What every test shares: the repository's inventories and how the two kinds of tests run.

- `tests/unit/`: no root, no lab; seconds to a minute (`pytest tests/unit`).
- `tests/lab/`: the real lab datacenter, one per session (`tests/lab/conftest.py`); marked
  `lab` automatically. They need root; without it they skip, except in CI where they fail.

Under pytest-xdist (`nox -s tests` runs `-n 2`) the lab tests form two scopes, each run in order
by one worker on that worker's session lab, and the unit tests fill the gaps. The suite is bound
by the controller's two cores (CPU idle 6 % on average over a clean-clone run with three labs),
so a third lab made it slower (1842 s against 1751 s: each lab's setup 620-631 s against
400 s), and only less work per converge shortens it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from .paths import LAB_INVENTORY, ROOT

LAB_DIR = ROOT / "tests" / "lab"
LAB_NODES = "tests/lab/"
FIRST = frozenset({"test_lab_integration.py", "test_environment_lab.py"})
"""Right after the first converge of their scope's lab: the second converge and `--check` must
find nothing to do, and the converge through the bastion should not re-scan with lynis (a scan
runs again once later tests have changed /etc; one CI run showed 164 s against 172 s, so not
proven)."""
LAB_A = frozenset(
    {
        "test_lab_integration.py",
        "test_access_lab.py",
        "test_drill_lab.py",
        "test_secrets_lab.py",
        "test_baseline_lab.py",
        "test_rpa_failover_lab.py",
    }
)
"""The lab files of the first scope; every other lab file: the second. Measured in a clean-clone
CI run (2026-12-07, each scope's session lab setup included): 1609 s and 1657 s, the second with
a converge through the bastion that re-scanned with lynis (now first in its scope: FIRST)."""
LAST = "test_lab_integration.py::test_destroy_leaves_nothing_behind"
REUSE_LAB = "GESTIC_TEST_REUSE_LAB"
"""Set to 1 to run the lab tests on the lab that GESTIC_LAB_NAME/GESTIC_STATE_DIR name, as it is
(already up and converged; not destroyed): quick iterations for developers, never used by CI."""


@pytest.fixture
def lab_inventory(tmp_path: Path) -> Path:
    """A writable copy of the lab inventory."""
    target = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, target)
    return target


def in_ci() -> bool:
    """CI says so with CI set to anything but empty, 0 or false (GitHub: "true"; others: "1")."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under xdist: the lab tests are two scopes (each on one worker and its lab, in order),
    each unit test a scope of its own.

    (xdist's `--dist loadgroup` would group by marks, but with pytest 9 it no longer renames the
    test ids it groups by, so marked tests were spread over the workers anyway.)
    """
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under xdist

    class TwoLabs(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if not nodeid.startswith(LAB_NODES):
                return nodeid
            file = nodeid[len(LAB_NODES) :].split("::", 1)[0]
            return "lab-a" if file in LAB_A else "lab-b"

    return TwoLabs(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the lab tests; the idempotence checks first, the destroy check last.

    Without root they skip, except in CI, where they must run (and fail).
    """
    for item in items:
        if Path(str(item.path)).is_relative_to(LAB_DIR):
            item.add_marker(pytest.mark.lab)

    def order(item: pytest.Item) -> int:
        if item.nodeid.endswith(LAST):
            return 2
        file = item.nodeid[len(LAB_NODES) :].split("::", 1)[0]
        return 0 if item.nodeid.startswith(LAB_NODES) and file in FIRST else 1

    items.sort(key=order)
    if os.environ.get(REUSE_LAB) == "1":
        keep = pytest.mark.skip(reason=f"{REUSE_LAB}=1: the developer's lab is not destroyed")
        for item in items:
            if item.nodeid.endswith(LAST):
                item.add_marker(keep)
    if os.geteuid() == 0 or in_ci():
        return
    skip = pytest.mark.skip(reason="the lab needs root (network namespaces, mounts, nspawn)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
