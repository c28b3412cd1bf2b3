"""Which Ansible strategy runs the plays: Mitogen by default, stock `linear` by a setting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gestic.errors import AnsibleError
from gestic.lab.access import LabAccess
from gestic.tools.ansible import strategy
from gestic.tools.ansible.runner import run_playbook

# A module that says whether it runs inside a Mitogen context (Mitogen runs modules in its
# long-lived interpreter on the host; stock Ansible starts a fresh Python for each module).
MODULE = """\
#!/usr/bin/python3
import sys
from ansible.module_utils.basic import AnsibleModule
AnsibleModule(argument_spec={}).exit_json(changed=False, mitogen="mitogen.core" in sys.modules)
"""
PLAYBOOK = """\
- name: Report the strategy that runs this play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ask the module where it runs
      where_am_i:
      register: where
    - name: Write the strategy plugin Ansible was told to use and what the module said
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ lookup('ansible.builtin.env', 'ANSIBLE_STRATEGY') }} {{ where.mitogen }}"
        mode: "0644"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "site.yml").write_text(PLAYBOOK)
    (playbooks / "library").mkdir()
    (playbooks / "library" / "where_am_i.py").write_text(MODULE)
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    return tmp_path


def _run(project: Path, name: str | None) -> str:
    out = project / "out.txt"
    result = run_playbook(
        playbooks_dir=project / "playbooks",
        playbook="site.yml",
        inventory=project / "hosts.yml",
        access=LabAccess(lab="ts1", state_dir=project / "state"),
        artifacts_dir=project / "artifacts",
        extravars={"out": str(out)},
        strategy=name,
    )
    assert result.ok, result.per_host
    return out.read_text()


def test_mitogen_is_the_default(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(strategy.STRATEGY_ENV, raising=False)
    assert _run(project, None) == "mitogen_linear True"  # Mitogen's interpreter ran the module


def test_the_stock_linear_strategy_runs_the_same_play(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(strategy.STRATEGY_ENV, strategy.LINEAR)
    assert _run(project, None) == "linear False"


def test_an_explicit_strategy_wins_over_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(strategy.STRATEGY_ENV, strategy.LINEAR)
    assert _run(project, strategy.MITOGEN) == "mitogen_linear True"


def test_an_unknown_strategy_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(strategy.STRATEGY_ENV, "mitogen_free")
    with pytest.raises(AnsibleError, match=r"GESTIC_ANSIBLE_STRATEGY='mitogen_free' .* linear"):
        strategy.strategy_env()


def test_mitogen_missing_says_how_to_get_it_or_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)  # import fails
    with pytest.raises(AnsibleError, match=r"needs the `mitogen` package.*=linear"):
        strategy.strategy_env(strategy.MITOGEN)
    assert strategy.strategy_env(strategy.LINEAR) == {"ANSIBLE_STRATEGY": "linear"}
