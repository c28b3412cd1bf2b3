"""An environment's secrets, with one custodian (Guía Custodia de Contraseñas).

Every Ansible run of an environment gets the same secrets, whichever checkout or machine
runs it, so a converge from anywhere changes nothing:

- a lab's secrets are generated once, when the lab first needs them, and kept in the lab's
  state (`<state>/lab/<lab>/secrets.yml`, mode 0600); they are never regenerated, and the
  roles never make up a secret of their own on the controller;
- any other environment keeps them in ansible-vault encrypted files of its inventory
  (`group_vars/all/vault.yml`); the vault password comes from a file or script
  (GESTIC_VAULT_PASSWORD_FILE or Ansible's ANSIBLE_VAULT_PASSWORD_FILE) or from the
  environment (GESTIC_VAULT_PASSWORD), never from the repository.

`check` runs before anything changes: a vault that cannot be decrypted, a wrong password or a
secret missing for a service is an error naming the file and the key.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleError as AnsibleCoreError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, get_file_vault_secret
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from gestic.errors import SecretsError
from gestic.model import Model

BACKUP_PASSWORDS = "gestic_backup_passwords"
DATABASE_PASSWORDS = "gestic_database_passwords"
"""Passwords of the PostgreSQL login roles gestic itself uses (the shared RPA ledger's role),
role -> password; the database role sets them, the bots hosts and the controller log in."""
LOGGING_CA = "gestic_logging_ca"
"""The logging CA, {key, cert} in PEM: hosts keep their own keys; it signs their certificates."""
LOGGING_CA_DAYS = 3650
RPA_COLLECTOR_KEY = "gestic_rpa_collector_key"
"""The bots' SFTP collector key, {private, public} in OpenSSH format (gestic_rpa.intake)."""
PASSWORD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PASSWORD_LENGTH = 40
PASSWORD_FILE_VARS = ("GESTIC_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
PASSWORD_VAR = "GESTIC_VAULT_PASSWORD"


def new_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def required(model: Model) -> dict[str, list[str]]:
    """The secret variables every environment must hold: variable -> the keys it needs."""
    needed = {BACKUP_PASSWORDS: sorted(model.services), LOGGING_CA: ["cert", "key"]}
    if model.rpa is not None and model.rpa.intake.inboxes:
        needed[RPA_COLLECTOR_KEY] = ["private", "public"]
    if (role := ledger_role(model)) is not None:
        needed[DATABASE_PASSWORDS] = [role]
    return needed


def ledger_role(model: Model) -> str | None:
    """The login role of the shared RPA ledger the model declares (gestic_rpa.ledger), if any."""
    ledger = model.rpa.ledger if model.rpa is not None else None
    return ledger.role if ledger is not None else None


def new_collector_key() -> dict[str, str]:
    """An ed25519 key pair for the bots' SFTP collector account, OpenSSH format."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return {"private": private, "public": f"{public} gestic-rpa-collector"}


#: Secrets that are one generated mapping (not a password per service), and their shape.
GENERATED = {LOGGING_CA: "key and cert, PEM", RPA_COLLECTOR_KEY: "private and public, OpenSSH"}
#: Secrets that are a generated password per key, and their shape.
PASSWORD_MAPS = {
    BACKUP_PASSWORDS: "a mapping of service -> password",
    DATABASE_PASSWORDS: "a mapping of database role -> password",
}


def new_logging_ca(now: datetime | None = None) -> dict[str, str]:
    """A new logging CA: an ECDSA P-384 key and its self-signed certificate (CA, no sub-CAs)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            # one CA per environment: its key, not its name, tells them apart
            x509.NameAttribute(NameOID.COMMON_NAME, "gestic logging CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ICETEX - Dirección de Tecnología"),
        ]
    )
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # hosts' clocks may lag a little
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=LOGGING_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return {
        "cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def _missing(where: str, data: dict[str, Any], model: Model) -> list[str]:
    problems = []
    for var, keys in required(model).items():
        value = data.get(var)
        if not isinstance(value, dict):
            shape = GENERATED.get(var) or PASSWORD_MAPS[var]
            problems.append(f"{where}: {var}: missing ({shape})")
            continue
        for key in keys:
            if not isinstance(value.get(key), str) or not value[key]:
                problems.append(f"{where}: {var}.{key}: missing or empty")
    return problems


@dataclass(frozen=True, kw_only=True)
class LabSecrets:
    """A lab's generated secrets, kept in the lab's state."""

    file: Path

    def read(self) -> dict[str, Any]:
        if not self.file.is_file():
            return {}
        data = yaml.safe_load(self.file.read_text()) or {}
        if not isinstance(data, dict):
            raise SecretsError(f"{self.file}:1: expected a mapping of secret variables")
        return data

    def ensure(self, model: Model) -> dict[str, Any]:
        """Add the secrets the model needs and the file lacks; never change one that exists."""
        data = self.read()
        added = False
        for var, keys in required(model).items():
            if var not in PASSWORD_MAPS:
                continue
            passwords = data.setdefault(var, {})
            for key in keys:
                if not passwords.get(key):
                    passwords[key] = self._legacy(var, key) or new_password()
                    added = True
        ca = data.get(LOGGING_CA)
        if not (isinstance(ca, dict) and ca.get("key") and ca.get("cert")):
            data[LOGGING_CA] = self._legacy_ca() or new_logging_ca()
            added = True
        collector = data.get(RPA_COLLECTOR_KEY)
        if RPA_COLLECTOR_KEY in required(model) and not (
            isinstance(collector, dict) and collector.get("private") and collector.get("public")
        ):
            data[RPA_COLLECTOR_KEY] = new_collector_key()
            added = True
        if added or not self.file.is_file():
            self.write(data)
        return data

    def _legacy(self, var: str, key: str) -> str | None:
        """A password an older gestic generated beside the key registry (kept, not replaced:
        the lab's repositories were made with it)."""
        old = self.file.parent / "backup-keys" / f"{key}.password"
        if var == BACKUP_PASSWORDS and old.is_file():
            return old.read_text().strip() or None
        return None

    def _legacy_ca(self) -> dict[str, str] | None:
        """The logging CA an older gestic kept in the lab's state (kept: the hosts' certificates
        were issued by it)."""
        ca_dir = self.file.parent / "pki" / "logging" / "ca"
        key, cert = ca_dir / "ca.key", ca_dir / "ca.pem"
        if key.is_file() and cert.is_file():
            return {"key": key.read_text(), "cert": cert.read_text()}
        return None

    def write(self, data: dict[str, Any]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# gestic: this lab's secrets, generated once; never commit this file.\n")
            yaml.safe_dump(data, out, sort_keys=True)
        tmp.replace(self.file)  # atomic: a crash leaves the old file or the new one

    def check(self, model: Model) -> None:
        self.ensure(model)

    def values(self, model: Model) -> dict[str, Any]:
        """The lab's secrets in clear (generated first where missing)."""
        return self.ensure(model)

    def rotate(self, model: Model, keys: list[str], *, var: str = BACKUP_PASSWORDS) -> Path:
        """New passwords of `var` (backup passwords by default) for `keys` in the lab's state;
        return the file written."""
        data = self.ensure(model)
        for key in keys:
            data[var][key] = new_password()
        self.write(data)
        return self.file

    def cmdline(self) -> list[str]:
        return ["-e", f"@{self.file}"]

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True, kw_only=True)
class VaultSecrets:
    """A non-lab environment's secrets: its inventory's ansible-vault files."""

    inventory: Path
    files: tuple[str, ...]  # names under group_vars/all
    state_dir: Path  # where the helper that hands Ansible GESTIC_VAULT_PASSWORD lives

    def password_source(self) -> Path | None:
        """The vault password file or script Ansible will read (None: none configured)."""
        for var in PASSWORD_FILE_VARS:
            if value := os.environ.get(var):
                path = Path(value).expanduser()
                if not path.is_file():
                    raise SecretsError(f"{var}={value}: the vault password file does not exist")
                return path
        if os.environ.get(PASSWORD_VAR):
            # Ansible reads an executable password file's output: this one prints the variable
            helper = self.state_dir / "vault-password-from-env"
            if not helper.is_file():
                helper.parent.mkdir(parents=True, exist_ok=True)
                helper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"${PASSWORD_VAR}\"\n")
                helper.chmod(0o700)
            return helper
        return None

    def _vault(self, file: Path) -> tuple[VaultLib, Path]:
        source = self.password_source()
        if source is None:
            raise SecretsError(
                f"{file}: encrypted with ansible-vault, but no vault password was given: set "
                f"{PASSWORD_FILE_VARS[0]} (a file or script) or {PASSWORD_VAR}"
            )
        try:
            secret = get_file_vault_secret(filename=str(source), loader=DataLoader())
            secret.load()
        except AnsibleCoreError as exc:
            raise SecretsError(f"{source}: cannot read the vault password: {exc}") from exc
        return VaultLib([("default", secret)]), source

    def decrypt(self, name: str) -> dict[str, Any]:
        """The clear variables of one vault file (raise SecretsError naming it)."""
        file = self.inventory / "group_vars" / "all" / name
        vault, source = self._vault(file)
        try:
            clear = vault.decrypt(file.read_bytes())
        except AnsibleCoreError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SecretsError(
                f"{file}: cannot be decrypted with the vault password from {source}: {first}"
            ) from exc
        try:
            data = yaml.safe_load(clear) or {}
        except yaml.YAMLError as exc:
            raise SecretsError(f"{file}: decrypted, but not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise SecretsError(f"{file}: decrypted, but not a mapping of variables")
        return data

    def check(self, model: Model) -> None:
        self.values(model)

    def values(self, model: Model) -> dict[str, Any]:
        """The clear variables of every vault file, checked complete (SecretsError otherwise)."""
        if not self.files:
            raise SecretsError(
                f"{self.inventory / 'group_vars' / 'all'}: no ansible-vault file holds the "
                f"environment's secrets ({', '.join(required(model))}); create one with "
                "`ansible-vault create group_vars/all/vault.yml` (docs/environments.md)"
            )
        merged: dict[str, Any] = {}
        for name in self.files:
            merged.update(self.decrypt(name))
        where = str(self.inventory / "group_vars" / "all" / self.files[0])
        if problems := _missing(where, merged, model):
            raise SecretsError("; ".join(problems))
        return merged

    def rotate(self, model: Model, keys: list[str], *, var: str = BACKUP_PASSWORDS) -> Path:
        """New passwords of `var` (backup passwords by default) for `keys`, re-encrypted into
        the vault file that holds them (same vault password); return that file, to be
        committed like any change.

        The file is rewritten from its decrypted YAML: comments inside the vault are not kept.
        """
        self.check(model)  # every file decrypts and the passwords are all there
        name, data = next((n, d) for n in self.files if var in (d := self.decrypt(n)))
        file = self.inventory / "group_vars" / "all" / name
        for key in keys:
            data[var][key] = new_password()
        vault, _source = self._vault(file)
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_bytes(vault.encrypt(yaml.safe_dump(data, sort_keys=True)))
        tmp.replace(file)  # atomic: the old vault or the new one, never half of it
        return file

    def cmdline(self) -> list[str]:
        return []

    def env(self) -> dict[str, str]:
        source = self.password_source()
        return {"ANSIBLE_VAULT_PASSWORD_FILE": str(source)} if source else {}


Secrets = LabSecrets | VaultSecrets
