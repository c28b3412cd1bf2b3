"""The robots' own environment (a virtualenv with rpaframework) and the gestic code they import.

rpaframework pins Robot Framework and Selenium and brings ~150 packages, so robots never run in
gestic's environment: `RobotsEnv.ensure` builds one virtualenv per content of
`robots/requirements.txt` into the cache (a bots host uses the one its role installed,
`GESTIC_ROBOTS_ENV`), and `adapter_pythonpath` copies the few standard-library-only gestic
modules the work-item adapter needs next to the runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import gestic
from gestic.errors import RpaError

#: The gestic modules a robot's adapter imports (standard library only): the adapter, the
#: broker's client and the error classes.
ADAPTER_MODULES: Final = (
    "__init__.py",
    "errors.py",
    "rpa/__init__.py",
    "rpa/queue_client.py",
    "rpa/adapter.py",
)
READY_MARK: Final = ".gestic-ready"
#: A prebuilt robots' environment to use as is (bots hosts: the rpa_scheduler role's).
ROBOTS_ENV_ENV: Final = "GESTIC_ROBOTS_ENV"

Printer = Callable[[str], None]


def quiet(_: str) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class RobotsEnv:
    """A virtualenv with rpaframework, built once per requirements file content."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @classmethod
    def location(cls, requirements: Path, cache: Path) -> Path:
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
        tag = f"py{sys.version_info.major}{sys.version_info.minor}"
        return cache / "rpa" / f"robots-{tag}-{digest}"

    @classmethod
    def existing(cls, path: Path) -> RobotsEnv:
        """A robots' environment built elsewhere (e.g. installed by a role); never modified."""
        env = cls(path=path)
        if not env.python.is_file():
            raise RpaError(
                f"{ROBOTS_ENV_ENV}={path}: no robots' environment there ({env.python} is missing)"
            )
        return env

    @classmethod
    def ensure(cls, requirements: Path, cache: Path, *, log: Printer = quiet) -> RobotsEnv:
        """The robots' environment for `requirements`, created (and cached) if missing."""
        if not requirements.is_file():
            raise RpaError(f"{requirements}: the robots' requirements file is missing")
        path = cls.location(requirements, cache)
        env = cls(path=path)
        if (path / READY_MARK).is_file():
            return env
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
            if (path / READY_MARK).is_file():
                return env
            shutil.rmtree(path, ignore_errors=True)
            log(f"creating the robots' environment in {path} (once; takes a few seconds)")
            # uv (a gestic dependency) installs rpaframework's ~150 packages 5-10x faster than
            # pip, from the same index and with the same resolution rules
            from uv import find_uv_bin  # noqa: PLC0415 - the bots hosts get a prebuilt env

            uv = find_uv_bin()
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(path)],
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(env.python),
                    "-r",
                    str(requirements),
                ],
            ]
            for cmd in steps:
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                    raise RpaError(
                        f"cannot create the robots' environment ({' '.join(cmd[:4])} ...): "
                        + " | ".join(tail)
                    )
            (path / READY_MARK).write_text(requirements.read_text(encoding="utf-8"))
        return env


def adapter_pythonpath(state: Path) -> Path:
    """A directory holding the gestic modules the adapter needs, current with this install."""
    src = Path(gestic.__file__).resolve().parent
    digest = hashlib.sha256()
    for rel in ADAPTER_MODULES:
        digest.update(rel.encode())
        digest.update((src / rel).read_bytes())
    target = state / "rpa" / f"pylib-{digest.hexdigest()[:12]}"
    if not (target / READY_MARK).is_file():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for rel in ADAPTER_MODULES:
            dest = tmp / "gestic" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest)
        (tmp / READY_MARK).write_text("")
        try:
            tmp.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return target
