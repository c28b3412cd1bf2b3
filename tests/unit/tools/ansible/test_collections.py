"""Ansible runs see only the collections playbooks/collections/requirements.yml lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from gestic.errors import AnsibleError
from gestic.tools.ansible import collections
from gestic.tools.ansible.runner import ansible_env

from ....paths import ROOT


def _installed(root: Path, *names: str) -> Path:
    for name in names:
        namespace, collection = name.split(".")
        found = root / "ansible_collections" / namespace / collection
        found.mkdir(parents=True)
        (found / "MANIFEST.json").write_text("{}")
    return root


def _playbooks(tmp_path: Path, text: str) -> Path:
    playbooks = tmp_path / "playbooks"
    (playbooks / "collections").mkdir(parents=True)
    (playbooks / "collections" / "requirements.yml").write_text(text)
    return playbooks


def test_the_repository_lists_what_the_roles_use() -> None:
    names = collections.required(ROOT / "playbooks")
    assert "community.postgresql" in names
    assert "ansible.builtin" not in names  # part of ansible-core: always there


def test_links_only_the_required_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _installed(tmp_path / "site", "ansible.posix", "community.general", "amazon.aws")
    monkeypatch.setattr(collections, "search_roots", lambda: [site])
    playbooks = _playbooks(tmp_path, "collections:\n- name: ansible.posix\n- community.general\n")
    target = collections.collections_dir(playbooks, tmp_path / "run")
    base = target / "ansible_collections"
    assert sorted(str(p.relative_to(base)) for p in base.glob("*/*")) == [
        "ansible/posix",
        "community/general",
    ]
    assert (base / "ansible" / "posix").resolve() == site / "ansible_collections/ansible/posix"
    # dropped from the requirements: its link goes; the run again finds the rest as they are
    (playbooks / "collections" / "requirements.yml").write_text("collections: [ansible.posix]\n")
    collections.collections_dir(playbooks, tmp_path / "run")
    assert not (base / "community" / "general").exists()
    assert (base / "ansible" / "posix").is_symlink()


def test_a_missing_collection_is_named_with_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _installed(tmp_path / "site", "ansible.posix")
    monkeypatch.setattr(collections, "search_roots", lambda: [site])
    playbooks = _playbooks(tmp_path, "collections: [ansible.posix, community.crypto]\n")
    with pytest.raises(AnsibleError, match=r"collection community\.crypto .* is not installed"):
        collections.collections_dir(playbooks, tmp_path / "run")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("collections: []\n", "must be a non-empty list"),
        ("collections:\n  - name: posix\n", r"collections\[0\]: expected a name"),
        ("collections: [\n", "not valid YAML"),
    ],
)
def test_a_bad_requirements_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AnsibleError, match=message):
        collections.required(_playbooks(tmp_path, text))


def test_every_run_gets_the_restricted_path(tmp_path: Path) -> None:
    class Access:
        control_dir = tmp_path / "control"
        state_dir = tmp_path / "state"
        ssh_config = tmp_path / "ssh_config"
        strict_host_keys = True
        secrets = None

    env = ansible_env(Access(), playbooks_dir=ROOT / "playbooks")  # type: ignore[arg-type]
    assert env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] == "False"
    linked = Path(env["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" / "community"
    assert (linked / "postgresql" / "MANIFEST.json").is_file()


def test_playbooks_without_requirements_keep_ansibles_own_search(tmp_path: Path) -> None:
    assert collections.collections_env(tmp_path, tmp_path / "run") == {}
