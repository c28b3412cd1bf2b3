"""Where gestic keeps its state and caches; every location can be moved by the environment."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout gestic runs from (GESTIC_ROOT, else the nearest parent with pyproject.toml)."""
    if env := os.environ.get("GESTIC_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "inventory").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    return here


def state_dir() -> Path:
    """Local, git-ignored state: Pulumi backend, ledger, lab keys, run artifacts."""
    return Path(os.environ.get("GESTIC_STATE_DIR", repo_root() / ".gestic")).resolve()


def cache_dir() -> Path:
    """Caches shared by every checkout on the machine: host image, Pulumi engine."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gestic"
    return Path(os.environ.get("GESTIC_CACHE_DIR", default)).resolve()
