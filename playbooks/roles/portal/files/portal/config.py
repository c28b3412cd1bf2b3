"""Settings read once from the environment (and secrets from systemd credentials)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    host: str
    port: int
    name: str
    user: str
    password: str
    sslmode: str
    sslrootcert: str | None
    connect_timeout: int = 3


@dataclass(frozen=True, kw_only=True)
class Settings:
    secret_key: str
    site: str
    host_name: str
    cookie_secure: bool
    database: DatabaseSettings | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read PORTAL_* variables; secrets come from files (systemd credentials)."""
        env = os.environ if env is None else env
        creds = env.get("CREDENTIALS_DIRECTORY")
        return cls(
            secret_key=_secret(env, "PORTAL_SECRET_KEY_FILE", creds, "secret-key"),
            site=env.get("PORTAL_SITE", ""),
            host_name=env.get("PORTAL_HOST_NAME", ""),
            cookie_secure=_flag(env, "PORTAL_COOKIE_SECURE"),
            database=DatabaseSettings(
                host=_required(env, "PORTAL_DB_HOST"),
                port=_integer(env, "PORTAL_DB_PORT", 5432),
                name=_required(env, "PORTAL_DB_NAME"),
                user=_required(env, "PORTAL_DB_USER"),
                password=_secret(env, "PORTAL_DB_PASSWORD_FILE", creds, "db-password"),
                sslmode=env.get("PORTAL_DB_SSLMODE", "verify-full"),
                sslrootcert=env.get("PORTAL_DB_SSLROOTCERT") or None,
            ),
        )


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise ConfigError(f"environment variable {key} is not set")
    return value


def _integer(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {key}={raw!r} is not an integer") from None


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"environment variable {key}={raw!r} is not true/false")
    return raw in {"true", "1", "yes"}


def _secret(env: Mapping[str, str], key: str, creds: str | None, credential: str) -> str:
    """A secret from the file named by `key`, else from the systemd credential `credential`."""
    named = env.get(key, "").strip()
    if named:
        path = Path(named)
    elif creds:
        path = Path(creds) / credential
    else:
        raise ConfigError(f"environment variable {key} is not set (and no systemd credentials)")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value
