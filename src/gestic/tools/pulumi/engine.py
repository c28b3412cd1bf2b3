"""Locate the Pulumi engine (CLI) that matches the installed Python SDK, and its launchers.

The engine is built from the Go module proxy by `nox -s engine` into the shared cache
(`<cache>/tools/pulumi-<version>/bin`); a `pulumi` of the same version on PATH also works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from gestic.errors import EngineError
from gestic.paths import cache_dir

# Python dynamic providers are started by the engine as `pulumi-resource-pulumi-python`;
# GESTIC_PYTHON names the interpreter that has gestic and the pulumi SDK installed.
DYNAMIC_LAUNCHER = """#!/bin/sh
# Written by gestic: serves Python dynamic providers to the Pulumi engine.
exec "${GESTIC_PYTHON:-python3}" -u -m pulumi.dynamic "$@"
"""


def sdk_version() -> str:
    return version("pulumi")


def tools_bin(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "tools" / f"pulumi-{sdk_version()}" / "bin"


def _engine_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().removeprefix("v")


def find_engine(cache: Path | None = None) -> Path:
    """The `pulumi` binary to use; raise EngineError saying how to get one if none fits."""
    want = sdk_version()
    built = tools_bin(cache) / "pulumi"
    candidates = [built] if built.is_file() else []
    if (on_path := shutil.which("pulumi")) is not None:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if _engine_version(candidate) == want:
            return candidate
    raise EngineError(
        f"no Pulumi engine v{want} found (looked in {built} and on PATH); "
        "build it with `nox -s engine` (needs Go and the Go module proxy)"
    )


def ensure_launchers(bin_dir: Path) -> None:
    """Write the dynamic-provider launcher next to the engine if it is missing or stale."""
    launcher = bin_dir / "pulumi-resource-pulumi-python"
    if not launcher.is_file() or launcher.read_text() != DYNAMIC_LAUNCHER:
        tmp = launcher.with_suffix(".tmp")
        tmp.write_text(DYNAMIC_LAUNCHER)
        tmp.chmod(0o755)
        tmp.replace(launcher)


def engine_env(engine: Path) -> dict[str, str]:
    """Environment for engine runs: its launchers and this interpreter first on PATH."""
    ensure_launchers(engine.parent)
    path = os.pathsep.join(
        [str(engine.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    return {
        "PATH": path,
        "GESTIC_PYTHON": sys.executable,
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "1",
    }
