"""Shared fixtures: the repository's inventories and a writable copy to break on purpose."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gestic.context import Context

from .labkit import ROOT, Lab, converge

LAB_INVENTORY = ROOT / "inventory" / "lab"


@pytest.fixture
def lab_inventory(tmp_path: Path) -> Path:
    """A writable copy of the lab inventory."""
    target = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, target)
    return target


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One real lab for the whole session: its own name, state dir and ledger; up and converged.

    Destroyed at the end of the session; `test_lab_integration.py::test_destroy_leaves_nothing_
    behind` runs last and checks nothing is left.
    """
    if os.environ.get(REUSE_LAB) == "1":
        yield _reused_lab()
        return
    state = tmp_path_factory.mktemp("lab-state")
    env = {
        "GESTIC_STATE_DIR": str(state),
        "GESTIC_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "GESTIC_LAB_NAME": "t" + secrets.token_hex(3)[:5],
        "GESTIC_INVENTORY": str(LAB_INVENTORY),
        "GESTIC_ROOT": str(ROOT),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ctx = Context.from_env()
    try:
        ctx.lab_stack.run("up")
        yield Lab(ctx=ctx, first_converge=converge(ctx))
    finally:
        try:
            ctx.lab_stack.run("destroy")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


REUSE_LAB = "GESTIC_TEST_REUSE_LAB"
"""Set to 1 to run the lab tests on the lab that GESTIC_LAB_NAME/GESTIC_STATE_DIR name, as it is
(already up and converged; not destroyed): quick iterations for developers, never used by CI."""


def _reused_lab() -> Lab:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{REUSE_LAB} is for developers' labs; CI always builds its own lab")
    ctx = Context.from_env()
    return Lab(ctx=ctx, first_converge=converge(ctx))


LAST = "test_lab_integration.py::test_destroy_leaves_nothing_behind"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab tests need root; without it they skip, except in CI where they must run (and fail).

    The destroy check runs last, after every other test that uses the session's lab.
    """
    items.sort(key=lambda item: item.nodeid.endswith(LAST))
    if os.environ.get(REUSE_LAB) == "1":
        keep = pytest.mark.skip(reason=f"{REUSE_LAB}=1: the developer's lab is not destroyed")
        for item in items:
            if item.nodeid.endswith(LAST):
                item.add_marker(keep)
    if os.geteuid() == 0 or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason="the lab needs root (network namespaces, mounts, nspawn)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
