"""What a bots host needs to run `gestic rpa schedule`, built on the controller.

Bots hosts have no route to a package index (the lab's have no internet at all), so the
`rpa_scheduler` role installs from two archives made here, both named by their content's
digest so that an unchanged checkout gives the same names and the role changes nothing:

* ``source-<digest>.tar``: gestic's sources, the robots and the inventories (the files git
  tracks; a deterministic tar: sorted, mtime 0, owner root, so equal content = equal bytes);
* ``wheelhouse-<digest>.tar``: wheels for gestic's runtime on the host (its dependencies minus
  the provisioning-only ones: production Pulumi providers, the Ansible collections, pytest)
  and for the robots' environment (`robots/requirements.txt`), resolved together by uv for
  the host's Python version, with the requirement files and the lock. Built once per
  requirements content and Python version into the cache (needs the package index once).

Usage (the role runs this on the controller, with the bots host's Python version):
``python -m gestic.rpa.release --python-version 3.11.2 [--out DIR]`` prints JSON
``{"source": ..., "wheelhouse": ..., "pip_wheel": ..., "built": [...]}``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from uv import find_uv_bin

from gestic import paths
from gestic.errors import RpaError

#: Dependencies of gestic that only provisioning and tests need (not robots, not the queue).
NOT_ON_BOTS_HOSTS: Final = frozenset(
    {"ansible", "pulumi-vsphere", "pulumi-aws", "pulumi-policy", "pytest", "pytest-testinfra", "uv"}
)
#: What the source archive holds (paths relative to the checkout).
SOURCE_PATHS: Final = ("pyproject.toml", "src/gestic", "robots", "inventory")
GESTIC_REQUIREMENTS: Final = "requirements-gestic.txt"
ROBOTS_REQUIREMENTS: Final = "requirements-robots.txt"
READY: Final = ".gestic-ready"
#: Bump when what goes into the wheelhouse changes other than by the requirement files.
WHEELHOUSE_RECIPE: Final = "recipe=3 (uv lock for the hosts' python, +pip)"
LOCK: Final = "requirements-lock.txt"

Printer = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Release:
    source: Path
    wheelhouse: Path
    pip_wheel: str
    built: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "source_name": self.source.name,
            "wheelhouse": str(self.wheelhouse),
            "wheelhouse_name": self.wheelhouse.name,
            "pip_wheel": self.pip_wheel,
            "built": list(self.built),
        }


def host_requirements(pyproject: Path) -> str:
    """gestic's dependencies a bots host needs, as a requirements file."""
    try:
        deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise RpaError(f"{pyproject}: cannot read project.dependencies: {exc}") from exc
    keep = [d for d in deps if re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0] not in NOT_ON_BOTS_HOSTS]
    return "".join(f"{d}\n" for d in keep)


def _tracked_files(root: Path) -> list[str]:
    """The files of SOURCE_PATHS in the checkout (as git sees them, ignored ones left out)."""
    try:
        proc = subprocess.run(
            # tracked, and new files not ignored (a change not committed yet is tested as is)
            [
                "git",
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
                "--",
                *SOURCE_PATHS,
            ],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RpaError(f"{root}: cannot list the checkout's files with git: {exc}") from exc
    names = {n for n in proc.stdout.decode().split("\0") if n}
    return sorted(n for n in names if (root / n).is_file())


def _tar(entries: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A deterministic tar of (name, content, mode) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = mode
            info.mtime = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _write_once(target: Path, content: bytes) -> bool:
    """Write `content` to `target` unless it is there already; True if written."""
    if target.is_file():
        return False
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(target)
    return True


def source_archive(root: Path, out: Path) -> tuple[Path, bool]:
    entries = []
    for name in _tracked_files(root):
        path = root / name
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        entries.append((name, path.read_bytes(), mode))
    if not entries:
        raise RpaError(f"{root}: no tracked files under {', '.join(SOURCE_PATHS)}")
    content = _tar(entries)
    target = out / f"source-{hashlib.sha256(content).hexdigest()[:16]}.tar"
    return target, _write_once(target, content)


def _pip_wheel(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        names = [Path(n).name for n in tar.getnames() if Path(n).name.startswith("pip-")]
    if len(names) != 1:
        raise RpaError(f"{archive}: expected one pip wheel in the wheelhouse, found {names}")
    return names[0]


def wheelhouse_archive(
    root: Path, out: Path, *, python_version: str, say: Printer
) -> tuple[Path, bool]:
    gestic_req = host_requirements(root / "pyproject.toml")
    robots_file = root / "robots" / "requirements.txt"
    try:
        robots_req = robots_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RpaError(f"{robots_file}: cannot read the robots' requirements: {exc}") from exc
    recipe = f"{WHEELHOUSE_RECIPE}\npython={python_version}\n{gestic_req}\0{robots_req}"
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    target = out / f"wheelhouse-{digest}.tar"
    if target.is_file():
        return target, False
    cache = paths.cache_dir() / "wheelhouse" / digest
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two bots hosts may ask for it at once
        if not (cache / READY).is_file():
            say(f"building the bots hosts' wheelhouse in {cache} (once; a minute or two)")
            _fill_wheelhouse(cache, gestic_req, robots_req, python_version)
        if not target.is_file():
            files = sorted(p for p in cache.iterdir() if p.name != READY)
            content = _tar((f"wheelhouse/{p.name}", p.read_bytes(), 0o644) for p in files)
            _write_once(target, content)
    return target, True


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RpaError(f"cannot build the bots hosts' wheelhouse ({what}): {tail}")


def _fill_wheelhouse(cache: Path, gestic_req: str, robots_req: str, python_version: str) -> None:
    """Resolve both requirement sets for the hosts' Python, then fetch or build each wheel.

    The resolution is for the host's Python, not this one (a package's newest release may
    need a later patch release than the host has); the wheels come from this machine's pip,
    which builds the few source-only packages (same distribution as the lab's image).
    """
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / GESTIC_REQUIREMENTS).write_text(gestic_req, encoding="utf-8")
    (cache / ROBOTS_REQUIREMENTS).write_text(robots_req, encoding="utf-8")
    # pip too: the hosts run pip from its wheel (Debian's python3 has no ensurepip).
    (cache / "requirements-all.in").write_text(f"{gestic_req}{robots_req}pip\n", encoding="utf-8")
    lock = cache / LOCK
    _run(
        [
            find_uv_bin(), "pip", "compile", "--quiet", "--no-header",
            "--python-version", python_version,
            "--python-platform", f"{platform.machine()}-unknown-linux-gnu",
            str(cache / "requirements-all.in"), "-o", str(lock),
        ],
        "uv pip compile",
    )  # fmt: skip
    (cache / "requirements-all.in").unlink()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(cache),
            "-r",
            str(lock),
        ],
        "pip wheel",
    )
    (cache / READY).write_text("")


def build(
    root: Path, out: Path, *, python_version: str | None = None, say: Printer = lambda _: None
) -> Release:
    """The archives for bots hosts whose Python is `python_version` (default: this one's)."""
    version = python_version or platform.python_version()
    if not re.fullmatch(r"3\.\d+\.\d+", version):
        raise RpaError(f"python version {version!r}: expected X.Y.Z (e.g. 3.11.2)")
    out.mkdir(parents=True, exist_ok=True)
    source, new_source = source_archive(root, out)
    wheelhouse, new_wheels = wheelhouse_archive(root, out, python_version=version, say=say)
    built = tuple(p.name for p, new in ((source, new_source), (wheelhouse, new_wheels)) if new)
    return Release(
        source=source, wheelhouse=wheelhouse, pip_wheel=_pip_wheel(wheelhouse), built=built
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gestic.rpa.release", description="Build the bots hosts' archives."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the archives (default: <gestic cache>/bots-release)",
    )
    parser.add_argument("--python-version", help="the hosts' Python, X.Y.Z (default: this one)")
    args = parser.parse_args(argv)
    try:
        release = build(
            paths.repo_root(),
            args.out or paths.cache_dir() / "bots-release",
            python_version=args.python_version,
            say=lambda m: print(m, file=sys.stderr),
        )
    except RpaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(release.as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
