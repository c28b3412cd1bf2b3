"""Shared fixtures: the repository's inventories and a writable copy to break on purpose."""

from __future__ import annotations

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
