"""ansible-runner wiring on localhost (no lab): counts, check mode, no settings leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from gestic.errors import AnsibleError
from gestic.lab.access import LabAccess
from gestic.tools.ansible.runner import ConvergeResult, run_playbook

PLAYBOOK = """\
- name: Write what this run's environment says
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Record the SSH arguments Ansible was given
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ lookup('ansible.builtin.env', 'ANSIBLE_SSH_ARGS') }}"
        mode: "0644"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    return tmp_path


def _run(project: Path, lab: str, out: Path, *, check: bool = False) -> ConvergeResult:
    access = LabAccess(lab=lab, state_dir=project / "state" / lab)
    return run_playbook(
        playbooks_dir=project / "playbooks",
        playbook="site.yml",
        inventory=project / "hosts.yml",
        access=access,
        artifacts_dir=project / "artifacts",
        extravars={"out": str(out)},
        check=check,
        diff=check,
    )


def test_each_run_uses_its_own_lab_settings(project: Path) -> None:
    out = project / "out.txt"
    first = _run(project, "ta1", out)
    assert first.ok
    assert first.changed == 1
    assert out.read_text() == f"-F {project / 'state' / 'ta1' / 'ssh_config'}"
    second = _run(project, "tb2", out)
    assert second.changed == 1
    assert out.read_text() == f"-F {project / 'state' / 'tb2' / 'ssh_config'}"


def test_check_mode_changes_nothing(project: Path) -> None:
    out = project / "out.txt"
    result = _run(project, "tc3", out, check=True)
    assert result.ok
    assert result.changed == 1
    assert not out.exists()


def test_missing_playbook_is_a_clear_error(project: Path) -> None:
    with pytest.raises(AnsibleError, match="playbook not found"):
        run_playbook(
            playbooks_dir=project,
            playbook="nope.yml",
            inventory=project / "hosts.yml",
            access=LabAccess(lab="td4", state_dir=project / "state"),
            artifacts_dir=project / "artifacts",
        )


def test_broken_playbook_reports_ansible_output(project: Path) -> None:
    (project / "playbooks" / "site.yml").write_text(
        "- hosts: all\n  tasks: [{no_such_module: {}}]\n"
    )
    with pytest.raises(AnsibleError, match="failed before reaching any host"):
        _run(project, "te5", project / "out.txt")
