#!/usr/bin/python3
"""gestic-dr: the backup and recovery agent installed on the hosts (Python standard library only).

The roles `backup_client` and `backup_maintenance` install this file as /usr/local/sbin/gestic-dr
and the systemd timers call it; the drill and restore-verification playbooks call it too. It
drives restic (encrypted, deduplicated snapshots in sftp repositories) and PostgreSQL's own
dump and restore tools, and prints one JSON document per call so Ansible and gestic can read
what happened and how long each phase took.

A service's settings are in /etc/gestic/backup/<service>.json, written by the roles:
paths and databases to back up, the repositories (the first is the primary, the others are
copies), the password file, the ssh settings and the retention.

Commands (all print JSON):
  backup SERVICE [--tag T]            dump databases, record checksums, back up to the primary
  init SERVICE                        create the repositories that do not exist yet
  maintain SERVICE                    forget/prune by retention, then copy to the other repos
  check SERVICE [--repo N] [--read-data-subset S]   restic check (exit 3 if damaged)
  snapshots SERVICE [--repo N]        the snapshots of the service
  recover SERVICE --mode live|scratch [--from-host H] [--tag T] [--repo N] [--unit U]...
                                      restore the newest snapshot, then (re)start the units
  probe SERVICE --probes JSON         run probes until they pass or time out
  marker-write SERVICE                write the RPO marker (database row or file)
  marker-read SERVICE [--scratch]     the newest marker in the live (or scratch) data
  cleanup SERVICE                     undo a recovery: put the pre-recovery data back
  status                              what this host holds from recoveries (for cleanup checks)

One file, over 500 lines, on purpose: it is host-side code, kept in the role that installs it
(backup_client: files/gestic_dr_agent.py -> /usr/local/sbin/gestic-dr) on hosts that lack the
gestic package, so it cannot import siblings. The unit tests load it by path
(tests/unit/host_code.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONFIG_DIR = Path("/etc/gestic/backup")
STATE_ROOT = Path("/var/lib/gestic-dr")
STATUS_DIR = Path("/var/lib/gestic-backup/status")
MARKER_FILE = ".gestic-dr-marker"
MARKER_TABLE = "gestic_dr_marker"
MARKER_MODE = 0o640
ASIDE_SUFFIX = "_gestic_aside"
MANIFEST = "manifest.json"
MANIFEST_MAX_FILES = 20000
EXIT_DAMAGED = 3


# Not a GesticError: this file runs on the hosts without the gestic package (standard library).
class AgentError(Exception):
    """A step failed; the message says which and why."""


# --- settings -------------------------------------------------------------------------------


def load_settings(service: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    file = config_dir / f"{service}.json"
    try:
        data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AgentError(f"{file}: no backup settings for service '{service}' here") from exc
    except json.JSONDecodeError as exc:
        raise AgentError(f"{file}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    for key in ("service", "paths", "databases", "repositories", "password_file", "staging"):
        if key not in data:
            raise AgentError(f"{file}: missing key '{key}'")
    if not data["repositories"]:
        raise AgentError(f"{file}: 'repositories' is empty")
    return data


def repository(settings: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    repos: list[dict[str, Any]] = settings["repositories"]
    if name is None:
        return repos[0]
    for repo in repos:
        if repo["name"] == name:
            return repo
    raise AgentError(f"service {settings['service']}: no repository named '{name}'")


def restic_args(settings: dict[str, Any], repo: dict[str, Any]) -> list[str]:
    """restic's global options for one repository (sftp through the backup ssh settings)."""
    # sftp repositories: ssh reads the key and known hosts from the system ssh_config
    # (a `Match user bk-*` block written by the backup_client role)
    args = ["restic", "--repo", repo["url"], "--password-file", settings["password_file"]]
    args += ["--cache-dir", settings.get("cache_dir", "/var/cache/gestic-restic")]
    return args


def run(
    cmd: Sequence[str],
    what: str,
    *,
    stdout: Any = subprocess.PIPE,
    stdin: Any = subprocess.DEVNULL,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": "C.UTF-8", "RESTIC_PROGRESS_FPS": "0.016"}
    proc = subprocess.run(
        list(cmd),
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        env=env,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        raise AgentError(f"{what}: `{' '.join(cmd[:3])} ...` exited {proc.returncode}: {detail}")
    return proc


def as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd]


def psql(database: str, sql: str, what: str) -> str:
    out = run(
        as_postgres("psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql), what
    )
    return out.stdout.strip()


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


# --- backup -----------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_of(paths: Sequence[str], *, root: Path = Path("/")) -> dict[str, str]:
    """sha256 of every regular file under `paths` (as absolute paths), up to a bound."""
    found: dict[str, str] = {}
    for top in paths:
        base = root / top.lstrip("/")
        candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for file in candidates:
            if file.is_symlink():
                continue
            if len(found) >= MANIFEST_MAX_FILES:
                return found
            found["/" + str(file.relative_to(root)).lstrip("/")] = sha256_of(file)
    return found


def stage(settings: dict[str, Any]) -> dict[str, Any]:
    """Dump the databases and write the checksum manifest into the staging directory."""
    staging = Path(settings["staging"])
    dumps = staging / "databases"
    dumps.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = now()
    for db in settings["databases"]:
        target = dumps / f"{db}.dump"
        partial = target.with_suffix(".partial")
        with partial.open("w") as out:
            run(as_postgres("pg_dump", "-Fc", db), f"dumping database {db}", stdout=out)
        partial.replace(target)
    manifest = {
        "service": settings["service"],
        "host": os.uname().nodename,
        "created_at": iso(now()),
        "databases": list(settings["databases"]),
        "files": manifest_of(settings["paths"]),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return {"stage_s": now() - started, "manifest_files": len(manifest["files"])}


def cmd_backup(settings: dict[str, Any], tags: Sequence[str]) -> dict[str, Any]:
    started = now()
    staged = stage(settings)
    repo = repository(settings)
    existing = [p for p in settings["paths"] if Path(p).exists()]
    cmd = [*restic_args(settings, repo), "backup", "--json", "--host", os.uname().nodename]
    for tag in ("gestic", f"service={settings['service']}", *tags):
        cmd += ["--tag", tag]
    cmd += [*existing, settings["staging"]]
    out = run(cmd, f"backing up {settings['service']} to {repo['name']}")
    summary = _last_json(out.stdout, "summary")
    result = {
        "service": settings["service"],
        "repository": repo["name"],
        "snapshot": summary.get("snapshot_id"),
        "files": summary.get("total_files_processed"),  # everything restic read, dumps too
        "bytes": summary.get("total_bytes_processed"),
        "added_bytes": summary.get("data_added"),
        "started_at": iso(started),
        "duration_s": now() - started,
        **staged,
        "ok": True,
    }
    _write_status(settings["service"], "backup", result)
    return result


def _last_json(stdout: str, message_type: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(line)
            if isinstance(data, dict) and data.get("message_type") == message_type:
                return data
    return {}


def _write_status(service: str, kind: str, result: dict[str, Any]) -> None:
    STATUS_DIR.mkdir(parents=True, exist_ok=True)
    (STATUS_DIR / f"{service}.{kind}.json").write_text(json.dumps(result), encoding="utf-8")


# --- repositories -----------------------------------------------------------------------------


def repo_exists(settings: dict[str, Any], repo: dict[str, Any]) -> bool:
    proc = run([*restic_args(settings, repo), "cat", "config"], "reading config", check=False)
    return proc.returncode == 0


def cmd_init(settings: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
    """Create the service's repositories that do not exist yet (`check`: only say which)."""
    created = []
    primary = repository(settings)
    for repo in settings["repositories"]:
        if repo_exists(settings, repo):
            continue
        if check:
            created.append(repo["name"])
            continue
        cmd = [*restic_args(settings, repo), "init"]
        if repo is not primary:
            # same chunker parameters as the primary, so copies deduplicate
            cmd += [
                "--copy-chunker-params",
                "--from-repo",
                primary["url"],
                "--from-password-file",
                settings["password_file"],
            ]
        run(cmd, f"creating repository {repo['name']} of {settings['service']}")
        created.append(repo["name"])
    return {"service": settings["service"], "created": created, "changed": bool(created)}


def cmd_init_many(
    services: Sequence[str], *, check: bool = False, config_dir: Path = CONFIG_DIR
) -> dict[str, Any]:
    """`init` of several services at once, one thread each: every restic call opens the
    repository's key (a deliberately slow derivation) over SFTP, about a second each, and a
    converge asks for all the services' repositories. Each service holds its own lock."""

    def one(service: str) -> dict[str, Any]:
        with _locked(service):
            return cmd_init(load_settings(service, config_dir), check=check)

    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        results = list(pool.map(one, services))  # the first error is raised, naming its service
    return {
        "services": results,
        "created": {r["service"]: r["created"] for r in results if r["created"]},
        "changed": any(r["changed"] for r in results),
    }


def _keys(settings: dict[str, Any], repo: dict[str, Any]) -> list[dict[str, Any]]:
    proc = run([*restic_args(settings, repo), "key", "list", "--json"], "listing keys")
    keys: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    return keys


def cmd_rekey(settings: dict[str, Any], new_password: str) -> dict[str, Any]:
    """Rotate the service's repository password: in each repository add a key for the new
    password (opened with the current one), then remove every other key; then the password
    file holds the new one. Safe to repeat and to run from each host of the service: a
    repository that already opens with the new password only loses its old keys, so a
    rotation stopped halfway is finished by the next run. A repository that does not exist
    yet is left to `init`."""
    if not new_password.strip():
        raise AgentError(f"service {settings['service']}: the new password is empty")
    password_file = Path(settings["password_file"])
    new_file = password_file.with_name(f".{password_file.name}.new")
    fd = os.open(new_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(new_password.strip())
    new_settings = {**settings, "password_file": str(new_file)}
    added, removed = [], []
    try:
        for repo in settings["repositories"]:
            if not repo_exists(new_settings, repo):
                if not repo_exists(settings, repo):
                    continue  # not created yet (or unreadable by both: `init`/`check` will say)
                run(
                    [*restic_args(settings, repo), "key", "add", "--new-password-file",
                     str(new_file)],
                    f"adding the new key to repository {repo['name']} of {settings['service']}",
                )  # fmt: skip
                added.append(repo["name"])
            for key in _keys(new_settings, repo):
                if not key.get("current"):
                    try:
                        run(
                            [*restic_args(new_settings, repo), "key", "remove", str(key["id"])],
                            f"removing an old key of repository {repo['name']}",
                        )
                    except AgentError:
                        # another host of the service removed it first: nothing left to do
                        if any(k["id"] == key["id"] for k in _keys(new_settings, repo)):
                            raise
                        continue
                    removed.append(f"{repo['name']}:{str(key['id'])[:8]}")
        new_file.replace(password_file)  # atomic: the file names the password that works
    finally:
        new_file.unlink(missing_ok=True)
    changed = bool(added or removed)
    return {"service": settings["service"], "added": added, "removed": removed, "changed": changed}


def cmd_maintain(settings: dict[str, Any]) -> dict[str, Any]:
    """Apply the retention (forget --prune) on the primary, then copy it to the other repos."""
    started = now()
    primary = repository(settings)
    keep = settings.get("retention", {})
    cmd = [*restic_args(settings, primary), "forget", "--prune", "--json", "--group-by", "host"]
    cmd += ["--tag", f"service={settings['service']}"]
    for period in ("hourly", "daily", "weekly", "monthly"):
        if int(keep.get(period, 0)) > 0:
            cmd += [f"--keep-{period}", str(keep[period])]
    if len(cmd) == 11:  # no retention at all: keep everything rather than forget everything
        cmd += ["--keep-last", "1000000"]
    run(cmd, f"applying the retention of {settings['service']}")
    copied = []
    for repo in settings["repositories"][1:]:
        copy = [*restic_args(settings, repo), "copy", "--from-repo", primary["url"]]
        copy += ["--from-password-file", settings["password_file"]]
        run(copy, f"copying {settings['service']} to {repo['name']}")
        run(
            [*restic_args(settings, repo), "forget", "--prune", "--group-by", "host",
             *cmd[cmd.index("--tag"):]],
            f"applying the retention of {settings['service']} in {repo['name']}",
        )  # fmt: skip
        copied.append(repo["name"])
    result = {"service": settings["service"], "copied_to": copied, "duration_s": now() - started}
    _write_status(settings["service"], "maintain", result)
    return result


LOCKED_MARK = "repository is already locked"


def check_state(exit_code: int, text: str) -> str:
    """intact | locked (another restic holds the repository: not damage) | damaged."""
    if exit_code == 0:
        return "intact"
    return "locked" if LOCKED_MARK in text else "damaged"


def _restic_words(text: str) -> list[str]:
    """restic's own lines that say what is wrong (the progress and summary lines left out)."""
    keep = ("error", "fatal", "damaged", "does not match", "locked", "lock was created", "pack ")
    return [ln.strip() for ln in text.splitlines() if any(w in ln.lower() for w in keep)][:20]


def _check_once(
    settings: dict[str, Any], repo: dict[str, Any], subset: str | None
) -> tuple[int, str]:
    cmd = [*restic_args(settings, repo), "check"]
    if subset:
        cmd.append(f"--read-data-subset={subset}")
    proc = run(cmd, f"checking {repo['name']}", check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def cmd_check(
    settings: dict[str, Any], repo_name: str | None, subset: str | None
) -> dict[str, Any]:
    """restic check of each repository, telling a lock from damage.

    A repository locked by a client that died mid-backup is not damaged: `restic unlock`
    removes the locks restic itself calls stale (their process gone on this host, or not
    refreshed for 30 minutes) and never a live one, then the check runs once more. A lock that
    is still live is reported as `locked` with restic's words (who holds it, since when).
    """
    repos = [repository(settings, repo_name)] if repo_name else settings["repositories"]
    results = []
    for repo in repos:
        started = now()
        code, text = _check_once(settings, repo, subset)
        unlocked = False
        if check_state(code, text) == "locked":
            run([*restic_args(settings, repo), "unlock"], f"unlocking {repo['name']}", check=False)
            unlocked = True
            code, text = _check_once(settings, repo, subset)
        state = check_state(code, text)
        results.append(
            {
                "repository": repo["name"],
                "url": repo["url"],
                "ok": state == "intact",
                "state": state,
                "exit": code,
                "unlock_tried": unlocked,
                "problems": _restic_words(text),
                "duration_s": now() - started,
            }
        )
    result = {"service": settings["service"], "ok": all(r["ok"] for r in results), "repos": results}
    _write_status(settings["service"], "check", result)
    return result


def snapshots(
    settings: dict[str, Any], repo: dict[str, Any], host: str | None, tag: str | None
) -> list[dict[str, Any]]:
    cmd = [*restic_args(settings, repo), "snapshots", "--json"]
    cmd += ["--tag", f"service={settings['service']}" + (f",{tag}" if tag else "")]
    if host:
        cmd += ["--host", host]
    out = run(cmd, f"listing the snapshots of {settings['service']} in {repo['name']}")
    found: list[dict[str, Any]] = json.loads(out.stdout or "[]") or []
    return sorted(found, key=lambda s: str(s.get("time", "")))


# --- recovery ---------------------------------------------------------------------------------


def state_dir(service: str) -> Path:
    return STATE_ROOT / service


def _move(src: Path, dst: Path) -> None:
    """Move src to dst; `dst` appears complete or not at all (an interrupted copy leaves only
    a `.partial` next to it, and `src` intact)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        src.rename(dst)
    except OSError:
        partial = dst.with_name(dst.name + ".partial")
        _remove(partial)
        shutil.copytree(src, partial, symlinks=True) if src.is_dir() else shutil.copy2(src, partial)
        partial.rename(dst)
        shutil.rmtree(src) if src.is_dir() else src.unlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _db_exists(name: str) -> bool:
    sql = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
    return psql("postgres", sql, f"looking for database {name}") == "1"


def _drop_db(name: str) -> None:
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"dropping {name}")


def _rename_db(old: str, new: str) -> None:
    psql(
        "postgres",
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{old}'",
        f"disconnecting clients from {old}",
    )
    psql("postgres", f'ALTER DATABASE "{old}" RENAME TO "{new}"', f"renaming {old} to {new}")


def cmd_recover(
    settings: dict[str, Any],
    *,
    mode: str,
    from_host: str | None,
    tag: str | None,
    repo_name: str | None,
    units: Sequence[str],
    probes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Restore the newest snapshot (live: in place, keeping the current data aside), start the
    units, then run the probes (if any) until they pass or time out."""
    service = settings["service"]
    t0 = now()
    repo = repository(settings, repo_name)
    found = snapshots(settings, repo, from_host or settings.get("primary_host"), tag)
    if not found:
        raise AgentError(
            f"no snapshot of {service} (host {from_host or settings.get('primary_host')}, "
            f"tag {tag or '-'}) in repository {repo['name']}"
        )
    snap = found[-1]
    sdir = state_dir(service)
    restored = sdir / "restored"
    _remove(restored)
    restored.mkdir(parents=True, exist_ok=True, mode=0o700)
    run(
        [*restic_args(settings, repo), "restore", snap["id"], "--target", str(restored)],
        f"restoring snapshot {snap['short_id']} of {service} from {repo['name']}",
    )
    t_restored = now()
    record: dict[str, Any] = {
        "service": service,
        "mode": mode,
        "snapshot": {"id": snap["id"], "time": snap["time"], "host": snap.get("hostname")},
        "aside_paths": [],
        "aside_databases": [],
        "started_at": t0,
    }
    previous = _read_state(service)
    staging = restored / settings["staging"].lstrip("/")
    if mode == "live":
        keep_aside = previous is None  # a rerun keeps the first pre-recovery copy
        record["aside_paths"] = previous["aside_paths"] if previous else []
        record["aside_databases"] = previous["aside_databases"] if previous else []
        record["created_databases"] = list((previous or {}).get("created_databases", []))
        for path in settings["paths"]:
            source = restored / path.lstrip("/")
            target = Path(path)
            aside = sdir / "aside" / path.lstrip("/")
            if target.exists() and keep_aside:
                _remove(aside)
                # recorded before the move: cleanup after an interruption puts it back
                record["aside_paths"].append(path)
                _write_state(service, record)
                _move(target, aside)
            else:
                _remove(target)
            if source.exists():
                _move(source, target)
        for db in settings["databases"]:
            aside_db = f"{db}{ASIDE_SUFFIX}"
            if _db_exists(db):
                if keep_aside and not _db_exists(aside_db):
                    record["aside_databases"].append(db)
                    _write_state(service, record)
                    _rename_db(db, aside_db)
                else:
                    _drop_db(db)
            elif db not in record["aside_databases"] + record["created_databases"]:
                # none here before (e.g. a ledger that lives only on the primary host): recorded
                # before the restore creates it, so cleanup drops it and leaves the host as it was
                record["created_databases"].append(db)
                _write_state(service, record)
            # the dump is read by this (root) process: postgres cannot enter the restore dir
            with (staging / "databases" / f"{db}.dump").open("rb") as dump:
                run(
                    as_postgres("pg_restore", "--create", "--exit-on-error", "-d", "postgres"),
                    f"restoring database {db}",
                    stdin=dump,
                )
    else:
        for db in settings["databases"]:
            scratch_db = f"{db}_gestic_verify"
            _drop_db(scratch_db)
            psql("postgres", f'CREATE DATABASE "{scratch_db}"', f"creating {scratch_db}")
            with (staging / "databases" / f"{db}.dump").open("rb") as dump:
                run(
                    as_postgres("pg_restore", "--no-owner", "--exit-on-error", "-d", scratch_db),
                    f"restoring database {db} into {scratch_db}",
                    stdin=dump,
                )
    _write_state(service, record)
    t_data = now()
    for unit in units:
        run(["systemctl", "restart", unit], f"starting {unit}")
    t_started = now()
    probed = cmd_probe(settings, probes, mode != "live") if probes else None
    return {
        "ok": probed is None or probed["ok"],
        "probes": probed["probes"] if probed else [],
        "probe_s": probed["probe_s"] if probed else 0.0,
        "service": service,
        "host": os.uname().nodename,
        "mode": mode,
        "snapshot": record["snapshot"],
        "restore_s": t_data - t0,
        "restic_restore_s": t_restored - t0,
        "start_s": t_started - t_data,
        "started_at": t0,
        "finished_at": t_started,
        "marker": marker_read(settings, scratch=mode != "live"),
        "bytes": _tree_bytes(restored) + _db_bytes(settings["databases"], mode),
    }


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _db_bytes(databases: Sequence[str], mode: str) -> int:
    total = 0
    for db in databases:
        name = db if mode == "live" else f"{db}_gestic_verify"
        with contextlib.suppress(AgentError, ValueError):
            total += int(psql("postgres", f"SELECT pg_database_size('{name}')", "sizing"))
    return total


def _write_state(service: str, record: dict[str, Any]) -> None:
    """What a recovery set aside, written atomically before (and after) each change."""
    file = state_dir(service) / "state.json"
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(file)


def _read_state(service: str) -> dict[str, Any] | None:
    file = state_dir(service) / "state.json"
    try:
        data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def cmd_cleanup(settings: dict[str, Any], units: Sequence[str] = ()) -> dict[str, Any]:
    """Put back what a recovery set aside, drop scratch data; idempotent (safe to rerun)."""
    service = settings["service"]
    sdir = state_dir(service)
    state = _read_state(service) or {"aside_paths": [], "aside_databases": []}
    undone: list[str] = []
    for path in state["aside_paths"]:
        aside = sdir / "aside" / path.lstrip("/")
        if aside.exists():
            _remove(Path(path))
            _move(aside, Path(path))
            undone.append(path)
    for db in settings["databases"]:
        aside_db = f"{db}{ASIDE_SUFFIX}"
        if _pg_running() and _db_exists(aside_db):
            _drop_db(db)
            _rename_db(aside_db, db)
            undone.append(f"database {db}")
        elif db in state.get("created_databases", []) and _pg_running() and _db_exists(db):
            _drop_db(db)  # the recovery created it: the host had none
            undone.append(f"database {db} (restored here, none before)")
        if _pg_running() and _db_exists(f"{db}_gestic_verify"):
            _drop_db(f"{db}_gestic_verify")
            undone.append(f"database {db}_gestic_verify")
    existed = sdir.exists()
    _remove(sdir)
    if undone:
        for unit in units:
            run(["systemctl", "restart", unit], f"restarting {unit}")
    return {"service": service, "undone": undone, "changed": bool(undone) or existed}


def _pg_running() -> bool:
    proc = run(as_postgres("pg_isready", "-q"), "pg_isready", check=False)
    return proc.returncode == 0


def cmd_status() -> dict[str, Any]:
    """Leftovers of recoveries on this host (a clean host has none)."""
    services = sorted(p.name for p in STATE_ROOT.iterdir()) if STATE_ROOT.is_dir() else []
    databases: list[str] = []
    if shutil.which("pg_isready") and _pg_running():
        sql = (
            "SELECT datname FROM pg_database WHERE datname LIKE '%\\_gestic\\_aside' "
            "OR datname LIKE '%\\_gestic\\_verify' ORDER BY 1"
        )
        databases = [d for d in psql("postgres", sql, "listing databases").splitlines() if d]
    return {"host": os.uname().nodename, "recoveries": services, "databases": databases}


# --- markers (RPO) ------------------------------------------------------------------------------


def cmd_marker_write(settings: dict[str, Any]) -> dict[str, Any]:
    stamp = now()
    if settings["databases"]:
        db = settings["databases"][0]
        psql(
            db,
            f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "written_at timestamptz NOT NULL DEFAULT now()); "
            f"INSERT INTO {MARKER_TABLE} (written_at) VALUES (to_timestamp({stamp})); "
            f"DELETE FROM {MARKER_TABLE} WHERE written_at < now() - interval '7 days';",
            f"writing the RPO marker row in {db}",
        )
    else:
        marker = Path(settings["paths"][0]) / MARKER_FILE
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        # no looser than the data it sits in (e.g. /var/log/remote is root:adm, files 0640),
        # not even for the moment between writing and renaming
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MARKER_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchown(fd, -1, marker.parent.stat().st_gid)
            os.fchmod(fd, MARKER_MODE)
            out.write(json.dumps({"written_at": stamp, "iso": iso(stamp)}))
        tmp.replace(marker)
    return {"service": settings["service"], "written_at": iso(stamp)}


def marker_read(settings: dict[str, Any], *, scratch: bool = False) -> float | None:
    """The newest marker in the restored data (epoch seconds), or None if there is none."""
    if settings["databases"]:
        db = settings["databases"][0] + ("_gestic_verify" if scratch else "")
        sql = f"SELECT coalesce(extract(epoch FROM max(written_at))::text, '') FROM {MARKER_TABLE}"
        try:
            value = psql(db, sql, f"reading the RPO marker in {db}")
        except AgentError:
            return None
        return float(value) if value else None
    base = state_dir(settings["service"]) / "restored" if scratch else Path("/")
    marker = base / settings["paths"][0].lstrip("/") / MARKER_FILE
    try:
        return float(json.loads(marker.read_text(encoding="utf-8"))["written_at"])
    except (OSError, ValueError, KeyError):
        return None


# --- probes ---------------------------------------------------------------------------------


def _probe_once(settings: dict[str, Any], probe: dict[str, Any], scratch: bool) -> str | None:
    """None if the probe passes, else why it does not (yet)."""
    kind = probe["type"]
    if kind == "http":
        try:
            with urllib.request.urlopen(probe["url"], timeout=5) as resp:
                status, body = resp.status, resp.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        except (urllib.error.URLError, OSError) as exc:
            return f"GET {probe['url']}: {exc}"
        if status != probe.get("status", 200):
            return f"GET {probe['url']}: status {status}, expected {probe.get('status', 200)}"
        if probe.get("contains") and probe["contains"] not in body:
            return f"GET {probe['url']}: the answer does not contain {probe['contains']!r}"
        return None
    if kind == "sql":
        db = probe["database"] + ("_gestic_verify" if scratch else "")
        try:
            value = psql(db, probe["query"], f"probe on {db}").splitlines()
        except AgentError as exc:
            return str(exc)
        first = value[0].split("|")[0] if value else ""
        try:
            number = int(float(first))
        except ValueError:
            return f"{probe['query']!r} on {db} returned {first!r}, not a number"
        if number < probe.get("min_value", 1):
            return f"{probe['query']!r} on {db} returned {number} < {probe.get('min_value', 1)}"
        return None
    if kind == "file":
        manifest_file = (
            state_dir(settings["service"]) / "restored" / settings["staging"].lstrip("/") / MANIFEST
        )
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"no backup manifest at {manifest_file}"
        expected = manifest.get("files", {}).get(probe["path"])
        if expected is None:
            return f"{probe['path']} has no checksum in the backup manifest"
        root = state_dir(settings["service"]) / "restored" if scratch else Path("/")
        target = root / probe["path"].lstrip("/")
        if not target.is_file():
            return f"{target} is missing"
        actual = sha256_of(target)
        if actual != expected:
            return f"{target}: sha256 {actual[:12]} differs from the backup's {expected[:12]}"
        return None
    if kind == "manifest":
        return _manifest_problem(settings, scratch)
    return f"unknown probe type {kind!r}"


def _manifest_problem(settings: dict[str, Any], scratch: bool) -> str | None:
    """None if every file the backup's manifest lists was restored with its checksum."""
    restored = state_dir(settings["service"]) / "restored"
    manifest_file = restored / settings["staging"].lstrip("/") / MANIFEST
    try:
        files: dict[str, str] = json.loads(manifest_file.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return f"no backup manifest at {manifest_file}"
    root = restored if scratch else Path("/")
    bad = [
        path
        for path, digest in files.items()
        if not (root / path.lstrip("/")).is_file() or sha256_of(root / path.lstrip("/")) != digest
    ]
    if bad:
        return f"{len(bad)} of {len(files)} restored files differ from the backup: {bad[:3]}"
    return None


def cmd_probe(
    settings: dict[str, Any], probes: list[dict[str, Any]], scratch: bool
) -> dict[str, Any]:
    t0 = now()
    results = []
    for probe in probes:
        start = now()
        deadline = start + float(probe.get("timeout_seconds", 60))
        tries = 0
        while True:
            tries += 1
            problem = _probe_once(settings, probe, scratch)
            if problem is None or now() >= deadline:
                break
            time.sleep(0.25)
        results.append(
            {
                "name": probe.get("name", probe["type"]),
                "type": probe["type"],
                "ok": problem is None,
                "detail": problem or "ok",
                "tries": tries,
                "duration_s": now() - start,
                "passed_at": now() if problem is None else None,
            }
        )
    return {
        "service": settings["service"],
        "host": os.uname().nodename,
        "ok": all(r["ok"] for r in results),
        "probes": results,
        "probe_s": now() - t0,
        "finished_at": now(),
    }


# --- entry point ------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gestic-dr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("backup", "init", "maintain", "check", "snapshots", "recover", "probe"):
        p = sub.add_parser(name)
        p.add_argument("service")
        if name == "backup":
            p.add_argument("--tag", action="append", default=[])
        if name in ("check", "snapshots", "recover"):
            p.add_argument("--repo", default=None)
        if name == "check":
            p.add_argument("--read-data-subset", default=None)
        if name == "snapshots":
            p.add_argument("--host", default=None)
        if name == "recover":
            p.add_argument("--mode", choices=["live", "scratch"], required=True)
            p.add_argument("--from-host", default=None)
            p.add_argument("--tag", default=None)
            p.add_argument("--unit", action="append", default=[])
            p.add_argument("--probes", default=None, help="JSON list of probes to run after")
        if name == "probe":
            p.add_argument("--probes", required=True, help="JSON list of probes")
            p.add_argument("--scratch", action="store_true")
    p = sub.add_parser("rekey", help="rotate the repository password (new one on stdin)")
    p.add_argument("service")
    for name in ("marker-write", "marker-read", "cleanup"):
        p = sub.add_parser(name)
        p.add_argument("service")
        if name == "marker-read":
            p.add_argument("--scratch", action="store_true")
        if name == "cleanup":
            p.add_argument("--unit", action="append", default=[])
    p = sub.add_parser("init-many", help="init of several services at once (--check: only report)")
    p.add_argument("services", nargs="+")
    p.add_argument("--check", action="store_true")
    sub.add_parser("status")
    return parser.parse_args(argv)


def dispatch(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    if args.command == "status":
        return cmd_status(), 0
    if args.command == "init-many":
        return cmd_init_many(args.services, check=args.check), 0
    settings = load_settings(args.service)
    if args.command == "backup":
        return cmd_backup(settings, args.tag), 0
    if args.command == "init":
        return cmd_init(settings), 0
    if args.command == "maintain":
        return cmd_maintain(settings), 0
    if args.command == "rekey":
        return cmd_rekey(settings, sys.stdin.read()), 0
    if args.command == "check":
        result = cmd_check(settings, args.repo, args.read_data_subset)
        return result, 0 if result["ok"] else EXIT_DAMAGED
    if args.command == "snapshots":
        repo = repository(settings, args.repo)
        return {"snapshots": snapshots(settings, repo, args.host, None)}, 0
    if args.command == "recover":
        return cmd_recover(
            settings,
            mode=args.mode,
            from_host=args.from_host,
            tag=args.tag,
            repo_name=args.repo,
            units=args.unit,
            probes=json.loads(args.probes) if args.probes else None,
        ), 0
    if args.command == "probe":
        result = cmd_probe(settings, json.loads(args.probes), args.scratch)
        return result, 0 if result["ok"] else 4
    if args.command == "marker-write":
        return cmd_marker_write(settings), 0
    if args.command == "marker-read":
        return {"marker": marker_read(settings, scratch=args.scratch)}, 0
    return cmd_cleanup(settings, args.unit), 0


@contextlib.contextmanager
def _locked(service: str | None) -> Iterator[None]:
    """One operation per service at a time (a timer and a drill never interleave)."""
    if service is None:
        yield
        return
    import fcntl  # noqa: PLC0415  (Unix only, like the hosts)

    Path("/run/gestic-dr").mkdir(parents=True, exist_ok=True)
    with open(f"/run/gestic-dr/{service}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        with _locked(getattr(args, "service", None)):
            result, code = dispatch(args)
    except AgentError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"gestic-dr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
