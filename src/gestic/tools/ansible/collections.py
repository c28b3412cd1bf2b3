"""The Ansible collections a run may load: only those `playbooks/collections/requirements.yml`
lists, not the ~100 of the `ansible` package.

With every collection of the `ansible` package on its search path, ansible-core and Mitogen
look through all of them for plugins and modules (Mitogen's planner lists them on every module
call). On the dev lab the no-op converges with only the four the roles use were as fast or
faster (figures in docs/converge.md), within the spread between runs. It also keeps a role from
using a collection nobody declared. gestic builds a directory of links to just those and
points ANSIBLE_COLLECTIONS_PATH at it, with the interpreter's own scan turned off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from gestic.errors import AnsibleError

REQUIREMENTS = Path("collections") / "requirements.yml"
"""Relative to the playbooks directory (the place ansible-galaxy and AWX look for it)."""


def required(playbooks_dir: Path) -> list[str]:
    """The collection names (`namespace.name`) the requirements file lists."""
    path = playbooks_dir / REQUIREMENTS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AnsibleError(f"{path}: cannot read the collections the roles use: {exc}") from exc
    except yaml.YAMLError as exc:
        raise AnsibleError(f"{path}: not valid YAML: {exc}") from exc
    entries = data.get("collections") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise AnsibleError(f"{path}: key 'collections' must be a non-empty list")
    names = []
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str) or name.count(".") != 1:
            raise AnsibleError(
                f"{path}: collections[{index}]: expected a name like 'ansible.posix', got {entry!r}"
            )
        names.append(name)
    return names


def search_roots() -> list[Path]:
    """Where installed collections are looked for, first match wins: the collection paths the
    user configured, ansible-galaxy's default places, then the interpreter's site-packages."""
    roots = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    roots += [Path.home() / ".ansible" / "collections", Path("/usr/share/ansible/collections")]
    roots += [Path(p) for p in sys.path if p]
    return roots


def _find(name: str, roots: Iterable[Path], skip: Path) -> Path | None:
    namespace, collection = name.split(".")
    for root in roots:
        if root.resolve() == skip.resolve():
            continue  # gestic's own links (an inherited ANSIBLE_COLLECTIONS_PATH)
        candidate = root / "ansible_collections" / namespace / collection
        if (candidate / "MANIFEST.json").is_file() or (candidate / "galaxy.yml").is_file():
            return candidate.resolve()
    return None


def collections_dir(playbooks_dir: Path, target: Path) -> Path:
    """`target`, made a collection path holding links to exactly the required collections.

    Rebuilt on every run (a few links), so it follows the installed packages; each link is
    replaced atomically, so runs that share `target` never see it half made.
    """
    roots = search_roots()
    found: dict[str, Path] = {}
    for name in required(playbooks_dir):
        location = _find(name, roots, target)
        if location is None:
            raise AnsibleError(
                f"the Ansible collection {name} ({playbooks_dir / REQUIREMENTS}) is not "
                "installed: install gestic's dependencies again (`pip install -e .`, it comes "
                f"with the `ansible` package) or `ansible-galaxy collection install {name}`"
            )
        found[name] = location
    base = target / "ansible_collections"
    for name, location in found.items():
        namespace, collection = name.split(".")
        link = base / namespace / collection
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.readlink() == location:
            continue
        staged = link.with_name(f".{collection}.{os.getpid()}")
        staged.unlink(missing_ok=True)
        staged.symlink_to(location, target_is_directory=True)
        os.replace(staged, link)
    for namespace_dir in base.iterdir():
        for link in namespace_dir.iterdir():
            stale = f"{namespace_dir.name}.{link.name}" not in found
            if stale and link.is_symlink() and not link.name.startswith("."):
                link.unlink()  # a collection the requirements no longer list
    return target


def collections_env(playbooks_dir: Path, target: Path) -> dict[str, str]:
    """The ANSIBLE_* variables that restrict a run to the required collections; none for a
    playbooks directory without a requirements file (Ansible's own search applies)."""
    if not (playbooks_dir / REQUIREMENTS).exists():
        return {}
    return {
        "ANSIBLE_COLLECTIONS_PATH": str(collections_dir(playbooks_dir, target)),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
    }
