"""The bots hosts' release: what goes into it, and names that change only with the content.

The wheelhouse itself needs the package index (built by the lab's converge, checked on the
bots host by tests/lab/test_rpa_lab.py); here: the requirements and the source archive.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from gestic.errors import RpaError
from gestic.rpa.release import build, host_requirements, source_archive

from ...paths import ROOT


def test_bots_hosts_get_the_runtime_not_the_provisioning_dependencies() -> None:
    names = {
        line.split("=")[0].split(">")[0]
        for line in host_requirements(ROOT / "pyproject.toml").split()
    }
    assert {"sqlalchemy", "croniter", "click", "ansible-core", "pulumi"} <= names
    assert not names & {"ansible", "pulumi-aws", "pulumi-vsphere", "pytest", "uv"}


def test_an_unreadable_pyproject_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "pyproject.toml"
    bad.write_text("[project\n")
    with pytest.raises(RpaError, match=r"pyproject.toml: cannot read project.dependencies"):
        host_requirements(bad)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src" / "gestic").mkdir(parents=True)
    (repo / "robots").mkdir()
    (repo / "inventory" / "lab").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname='x'\n")
    (repo / "src" / "gestic" / "__init__.py").write_text("")
    (repo / "robots" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "robots" / "run.sh").chmod(0o755)
    (repo / "inventory" / "lab" / "hosts.yml").write_text("all: {}\n")
    (repo / ".gitignore").write_text("*.secret\n")
    (repo / "notes.txt").write_text("not part of a release\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    return repo


def test_the_source_archive_is_named_by_its_content(checkout: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first, built = source_archive(checkout, out)
    assert built
    again, built_again = source_archive(checkout, out)
    assert (again, built_again) == (first, False)  # same content, same name, nothing written
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {
        "pyproject.toml",
        "src/gestic/__init__.py",
        "robots/run.sh",
        "inventory/lab/hosts.yml",
    }
    assert members["robots/run.sh"].mode == 0o755
    assert {m.mtime for m in members.values()} == {0}
    # An ignored file never goes in; a new file does, even before it is committed.
    (checkout / "inventory" / "lab" / "vault.secret").write_text("s3cret")
    assert source_archive(checkout, out)[0] == first
    (checkout / "robots" / "new.robot").write_text("*** Tasks ***\n")
    changed, built = source_archive(checkout, out)
    assert built
    assert changed != first


def test_outside_a_git_checkout_and_bad_versions_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RpaError, match="cannot list the checkout's files with git"):
        source_archive(tmp_path, tmp_path)
    with pytest.raises(RpaError, match=r"python version '3.11': expected X.Y.Z"):
        build(ROOT, tmp_path / "out", python_version="3.11")
    assert not (tmp_path / "out").exists()  # refused before anything was written
