"""Shared fixtures: the repository's inventories and a writable copy to break on purpose."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_INVENTORY = ROOT / "inventory" / "lab"


@pytest.fixture
def lab_inventory(tmp_path: Path) -> Path:
    """A writable copy of the lab inventory."""
    target = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, target)
    return target


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab tests need root; without it they skip, except in CI where they must run (and fail)."""
    if os.geteuid() == 0 or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason="the lab needs root (network namespaces, mounts, nspawn)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
