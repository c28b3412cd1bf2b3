"""Host-side code the roles install (not part of the gestic package), loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from ..paths import ROOT


def load(role: str, name: str) -> ModuleType:
    """`playbooks/roles/<role>/files/<name>.py` as a module (registered: dataclasses need it)."""
    if (loaded := sys.modules.get(name)) is not None:
        return loaded
    path = ROOT / "playbooks" / "roles" / role / "files" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


dr_agent = load("backup_client", "gestic_dr_agent")
