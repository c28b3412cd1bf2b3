"""Environments other than the lab: selection, how hosts are reached, secrets and bad input."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gestic.environments.context import Context, environment_inventory
from gestic.environments.custody import (
    BACKUP_PASSWORDS,
    DATABASE_PASSWORDS,
    LOGGING_CA,
    PASSWORD_FILE_VARS,
    PASSWORD_VAR,
    RPA_COLLECTOR_KEY,
    LabSecrets,
    VaultSecrets,
    new_collector_key,
    new_logging_ca,
)
from gestic.errors import ModelError, NotALabError, SecretsError, UsageError
from gestic.model import load_model
from gestic.tools.ssh import InventoryAccess

from ...paths import LAB_INVENTORY, ROOT

SERVICES = tuple(load_model(LAB_INVENTORY, check_machine=False).services)


def _env(
    tmp_path: Path, name: str = "pruebas", connection: dict[str, object] | None = None
) -> Path:
    """A copy of the lab inventory that is not a lab: reached as `connection` says."""
    inv = tmp_path / name
    shutil.copytree(LAB_INVENTORY, inv)
    (inv / "group_vars" / "all" / "lab.yml").unlink()
    (inv / "known_hosts").write_text("web-p1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake\n")
    (inv / "id_test").write_text("not a real key: only its presence is checked\n")
    conn = connection or {
        "known_hosts": "known_hosts",
        "identity_file": "id_test",
        "bastion": {"host": "salto.example.org", "user": "salto", "port": 2222},
    }
    file = inv / "group_vars" / "all" / "connection.yml"
    file.write_text(file.read_text() + yaml.safe_dump({"gestic_connection": conn}))
    return inv


def _vault(inv: Path, data: dict[str, object], password: str) -> Path:
    lib = VaultLib([("default", VaultSecret(password.encode()))])
    file = inv / "group_vars" / "all" / "vault.yml"
    file.write_bytes(lib.encrypt(yaml.safe_dump(data)))
    return file


_CA = new_logging_ca()
_COLLECTOR = new_collector_key()


def _passwords() -> dict[str, object]:
    return {
        BACKUP_PASSWORDS: {s: f"pw-{s}" for s in SERVICES},
        LOGGING_CA: _CA,
        RPA_COLLECTOR_KEY: _COLLECTOR,
        DATABASE_PASSWORDS: {"gestic": "pw-ledger"},  # the copy declares the shared RPA ledger
    }


def test_env_names_an_inventory_directory() -> None:
    assert environment_inventory(env="production") == (ROOT / "inventory" / "production")
    assert environment_inventory(env="lab") == LAB_INVENTORY


def test_an_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown environment 'pruduction'.*lab, production"):
        environment_inventory(env="pruduction")
    with pytest.raises(UsageError, match="not both"):
        environment_inventory(Path("/tmp"), env="lab")


def test_the_cli_refuses_an_unknown_environment_before_anything_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gestic", "--env", "nowhere", "validate"],
        capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "GESTIC_ROOT": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1
    assert "unknown environment 'nowhere'" in done.stdout + done.stderr


def test_a_non_lab_environment_must_say_how_its_hosts_are_reached(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    file = inv / "group_vars" / "all" / "connection.yml"
    file.write_text("ansible_user: gestic\n")
    with pytest.raises(ModelError, match="missing 'gestic_connection'"):
        load_model(inv, check_machine=False)


def test_a_missing_key_file_is_named_with_file_line_and_key(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    (inv / "id_test").unlink()
    with pytest.raises(ModelError) as info:
        load_model(inv, check_machine=False)
    (problem,) = info.value.problems
    assert "connection.yml:" in problem
    assert "gestic_connection.identity_file: file not found" in problem
    assert str(inv / "id_test") in problem


def test_a_bastion_with_a_bad_name_is_refused(tmp_path: Path) -> None:
    inv = _env(tmp_path, connection={"bastion": {"host": "salto example"}})
    with pytest.raises(ModelError, match=r"gestic_connection\.bastion\.host"):
        load_model(inv, check_machine=False)


def test_the_ssh_config_jumps_through_the_bastion_with_strict_host_keys(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    (inv / "ssh_config").write_text("Host salto.example.org\n  HostName 192.0.2.7\n")
    conn_file = inv / "group_vars" / "all" / "connection.yml"
    text = conn_file.read_text()
    conn_file.write_text(
        text.replace("gestic_connection:\n", "gestic_connection:\n  ssh_config: ssh_config\n")
    )
    model = load_model(inv, check_machine=False)
    assert model.lab is None
    assert model.connection is not None
    access = InventoryAccess(
        environment=model.environment, connection=model.connection, inventory=inv,
        state_dir=tmp_path / "state",
    )  # fmt: skip
    text = access.render(model)
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[1] == f"Include {inv / 'ssh_config'}"  # the environment's own file first
    web = lines[lines.index("Host web-p1") : lines.index("Host web-p1") + 5]
    assert "HostName 10.213.1.11" in web
    assert "ProxyJump salto.example.org" in web
    jump = lines[lines.index("Host salto.example.org") : lines.index("Host salto.example.org") + 4]
    assert "Port 2222" in jump
    assert "User salto" in jump
    assert "StrictHostKeyChecking yes" in lines
    assert f"UserKnownHostsFile {inv / 'known_hosts'}" in lines
    assert f"IdentityFile {inv / 'id_test'}" in lines
    route = access.route("web-p1", model)
    assert route == "web-p1 (10.213.1.11) via bastion salto.example.org"
    # ssh itself accepts the file and resolves a host through the jump
    access.write(model)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(access.ssh_config), "web-p1"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert "proxyjump salto.example.org" in resolved
    assert "stricthostkeychecking true" in resolved


def test_ansible_host_overrides_the_address_ssh_dials(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    hosts = inv / "hosts.yml"
    text = hosts.read_text()
    assert "gestic_address: 10.213.1.11" in text
    hosts.write_text(
        text.replace(
            "gestic_address: 10.213.1.11",
            "gestic_address: 10.213.1.11\n"
            "          ansible_host: web-p1.icetex.example\n"
            "          ansible_port: 2201",
            1,
        )
    )
    model = load_model(inv, check_machine=False)
    assert model.hosts["web-p1"].ssh_host == "web-p1.icetex.example"
    conn = model.connection
    assert conn is not None
    text = InventoryAccess(
        environment="pruebas", connection=conn, inventory=inv, state_dir=tmp_path
    ).render(model)
    assert "  HostName web-p1.icetex.example\n  Port 2201\n" in text


def test_vault_files_are_secrets_the_model_does_not_read(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    _vault(inv, _passwords(), "s3cret")
    model = load_model(inv, check_machine=False)
    assert model.vault_files == ("vault.yml",)


def test_the_vault_decrypts_with_the_right_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    _vault(inv, _passwords(), "s3cret")
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=model.vault_files, state_dir=tmp_path / "state")
    for var in PASSWORD_FILE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD", "s3cret")
    store.check(model)
    helper = Path(store.env()["ANSIBLE_VAULT_PASSWORD_FILE"])
    assert helper.stat().st_mode & stat.S_IXUSR  # Ansible runs it and reads its output
    assert subprocess.run([helper], capture_output=True, text=True, check=True).stdout == "s3cret\n"
    assert "s3cret" not in helper.read_text()  # it prints the variable, never holds it


def test_a_wrong_vault_password_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    file = _vault(inv, _passwords(), "s3cret")
    password_file = tmp_path / "vault-pass"
    password_file.write_text("wrong\n")
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD_FILE", str(password_file))
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=model.vault_files, state_dir=tmp_path)
    with pytest.raises(SecretsError, match=f"{file}: cannot be decrypted") as info:
        store.check(model)
    assert str(password_file) in str(info.value)


def test_no_vault_password_and_an_undecryptable_vault_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    file = _vault(inv, _passwords(), "s3cret")
    for var in (*PASSWORD_FILE_VARS, PASSWORD_VAR):
        monkeypatch.delenv(var, raising=False)
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=model.vault_files, state_dir=tmp_path)
    with pytest.raises(SecretsError, match="no vault password was given"):
        store.check(model)
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD", "s3cret")
    file.write_text(file.read_text().replace("\n", "\n00", 2))  # damaged ciphertext
    with pytest.raises(SecretsError, match=f"{file}: cannot be decrypted"):
        store.check(model)
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(SecretsError, match="vault password file does not exist"):
        store.check(model)


def test_a_secret_missing_for_a_service_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    first, second, *rest = SERVICES
    _vault(inv, {BACKUP_PASSWORDS: {first: "x", second: ""}}, "s3cret")
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD", "s3cret")
    monkeypatch.delenv("GESTIC_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=model.vault_files, state_dir=tmp_path)
    with pytest.raises(SecretsError) as info:
        store.check(model)
    assert f"{BACKUP_PASSWORDS}.{second}: missing or empty" in str(info.value)
    assert all(f"{BACKUP_PASSWORDS}.{s}: missing or empty" in str(info.value) for s in rest)
    assert f"{BACKUP_PASSWORDS}.{first}:" not in str(info.value)
    assert "vault.yml" in str(info.value)
    assert f"{LOGGING_CA}: missing (key and cert, PEM)" in str(info.value)


def test_an_environment_without_a_vault_is_refused(tmp_path: Path) -> None:
    inv = _env(tmp_path)
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=(), state_dir=tmp_path)
    with pytest.raises(SecretsError, match="no ansible-vault file holds"):
        store.check(model)


def test_lab_secrets_are_generated_once_and_never_changed(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    store = LabSecrets(file=tmp_path / "lab" / "secrets.yml")
    first = store.ensure(model)
    assert set(first[BACKUP_PASSWORDS]) == set(model.services)
    assert all(len(p) == 40 for p in first[BACKUP_PASSWORDS].values())
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    mtime = store.file.stat().st_mtime_ns
    assert store.ensure(model) == first
    assert store.file.stat().st_mtime_ns == mtime  # nothing to add: not even rewritten
    # a service added to the model gets a password; the others keep theirs
    data = store.read()
    one, other = SERVICES[:2]
    del data[BACKUP_PASSWORDS][one]
    store.write(data)
    again = store.ensure(model)
    assert again[BACKUP_PASSWORDS][other] == first[BACKUP_PASSWORDS][other]
    assert again[BACKUP_PASSWORDS][one] != first[BACKUP_PASSWORDS][one]


def test_a_lab_keeps_the_passwords_its_repositories_were_made_with(tmp_path: Path) -> None:
    """A lab converged by an older gestic has its passwords beside the key registry."""
    model = load_model(LAB_INVENTORY, check_machine=False)
    legacy = tmp_path / "lab" / "backup-keys"
    legacy.mkdir(parents=True)
    (legacy / f"{SERVICES[0]}.password").write_text("the-old-one")
    store = LabSecrets(file=tmp_path / "lab" / "secrets.yml")
    assert store.ensure(model)[BACKUP_PASSWORDS][SERVICES[0]] == "the-old-one"


def test_a_lab_keeps_its_logging_ca_once_made(tmp_path: Path) -> None:
    """The CA is made once (or taken from an older gestic's PKI dir) and then never changes."""
    model = load_model(LAB_INVENTORY, check_machine=False)
    store = LabSecrets(file=tmp_path / "lab" / "secrets.yml")
    ca = store.ensure(model)[LOGGING_CA]
    cert = x509.load_pem_x509_certificate(ca["cert"].encode())
    key = serialization.load_pem_private_key(ca["key"].encode(), password=None)
    assert cert.public_key() == key.public_key()
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert store.ensure(model)[LOGGING_CA] == ca
    old = tmp_path / "old" / "pki" / "logging" / "ca"
    old.mkdir(parents=True)
    (old / "ca.key").write_text(_CA["key"])
    (old / "ca.pem").write_text(_CA["cert"])
    legacy = LabSecrets(file=tmp_path / "old" / "secrets.yml")
    assert legacy.ensure(model)[LOGGING_CA] == _CA


def test_lab_commands_refuse_a_non_lab_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    ctx = Context(inventory=inv, state=tmp_path / "state", cache=tmp_path / "cache")
    monkeypatch.setattr(
        "gestic.environments.context.load_model", lambda p: load_model(p, check_machine=False)
    )
    assert not ctx.is_lab
    assert ctx.target == "pruebas"
    assert isinstance(ctx.access, InventoryAccess)
    assert ctx.access.state_dir == tmp_path / "state" / "env" / "pruebas"
    with pytest.raises(NotALabError, match=r"'pruebas'.*is not a lab"):
        _ = ctx.lab_stack


def test_a_lab_rotation_changes_only_the_chosen_service(tmp_path: Path) -> None:
    model = load_model(LAB_INVENTORY, check_machine=False)
    store = LabSecrets(file=tmp_path / "lab" / "secrets.yml")
    before = store.ensure(model)[BACKUP_PASSWORDS].copy()
    one, *others = SERVICES
    store.rotate(model, [one])
    after = store.read()[BACKUP_PASSWORDS]
    assert after[one] != before[one]
    assert len(after[one]) == 40
    assert all(after[s] == before[s] for s in others)


def test_a_vault_rotation_re_encrypts_with_the_same_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = _env(tmp_path)
    file = _vault(inv, {**_passwords(), "other_secret": "kept"}, "s3cret")
    model = load_model(inv, check_machine=False)
    store = VaultSecrets(inventory=inv, files=model.vault_files, state_dir=tmp_path / "state")
    for var in PASSWORD_FILE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD", "s3cret")
    one, *others = SERVICES
    assert store.rotate(model, [one]) == file
    assert b"pw-" not in file.read_bytes()  # still encrypted
    clear = store.decrypt(file.name)
    assert clear["other_secret"] == "kept"
    assert clear[BACKUP_PASSWORDS][one] != f"pw-{one}"
    assert all(clear[BACKUP_PASSWORDS][s] == f"pw-{s}" for s in others)
    monkeypatch.setenv("GESTIC_VAULT_PASSWORD", "wrong")
    with pytest.raises(SecretsError, match=str(file)):
        store.rotate(model, [one])  # nothing rewritten with a password that cannot read it


def test_rotate_says_what_to_rotate_and_refuses_an_unknown_service(tmp_path: Path) -> None:
    for args, message in (([], "say what to rotate"), (["--backup", "nope"], "unknown service")):
        proc = subprocess.run(
            [sys.executable, "-m", "gestic", "--inventory", str(LAB_INVENTORY), "secrets",
             "rotate", *args],
            capture_output=True, text=True, check=False,
            env={**os.environ, "GESTIC_STATE_DIR": str(tmp_path / "state"),
                 "GESTIC_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"},
        )  # fmt: skip
        assert proc.returncode != 0
        assert message in proc.stdout + proc.stderr
