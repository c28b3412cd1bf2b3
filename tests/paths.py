"""Where the tests find the repository and its inventories."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB_INVENTORY = ROOT / "inventory" / "lab"
UNIT_DATA = ROOT / "tests" / "unit" / "data"
"""The unit tests' sample files (tests/unit/data), shared by every folder of tests/unit."""
