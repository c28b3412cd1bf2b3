"""Entry points: `nox -s demo` (main job on the lab), `nox -s tests`; also lint, bench, engine.

Each session installs what it needs: the Debian packages the lab uses (as root), the project in
its virtualenv, and the Pulumi engine built from the Go module proxy into the shared cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
# uv creates the virtualenvs and installs into them several times faster than pip (a fresh
# `nox -s tests` install: ~3 min with pip); plain virtualenv + pip where uv is not installed.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
DEBIAN_PACKAGES = (
    "chromium",  # browser robots (headless), with its driver: no driver download
    "chromium-driver",
    "debootstrap",
    "systemd-container",
    "iproute2",
    "netcat-openbsd",
    "openssh-client",
    "postgresql",  # the unit tests' throwaway PostgreSQL clusters (gestic.tools.pgcluster)
)
# Debian's postgresql-15 creates (and where it can, starts) a "main" cluster on install; the
# tests start clusters of their own and this machine needs none. Its postinst skips the main
# cluster when `pg_conftool createcluster.conf show create_main_cluster` is off: a drop-in in
# the createcluster.d that file includes says so, without writing createcluster.conf itself
# (postgresql-common installs that one through ucf).
NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.d/gestic-no-main-cluster.conf")
CACHE = Path(
    os.environ.get(
        "GESTIC_CACHE_DIR",
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gestic",
    )
)


def _pulumi_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        if m := re.fullmatch(r"pulumi==([0-9.]+)", dep.split(";")[0].split("#")[0].strip()):
            return m.group(1)
    raise RuntimeError("pyproject.toml must pin pulumi==X.Y.Z (the engine is built to match)")


def _ensure_debian_packages(session: nox.Session) -> None:
    missing = [
        pkg
        for pkg in DEBIAN_PACKAGES
        if "install ok installed"
        not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False
        ).stdout
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        session.error(
            f"the lab needs the Debian packages {' '.join(missing)}; installing them needs root: "
            f"run `sudo apt-get install -y {' '.join(missing)}` or run nox as root"
        )
    if shutil.which("apt-get") is None:
        session.error(f"apt-get not found: install {' '.join(missing)} with your package manager")
    session.log(f"installing Debian packages: {' '.join(missing)}")
    if "postgresql" in missing and not NO_MAIN_CLUSTER.exists():
        NO_MAIN_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
        NO_MAIN_CLUSTER.write_text("create_main_cluster = false\n")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *missing,
        external=True,
        env=env,
    )


def _ensure_root(session: nox.Session) -> None:
    if os.geteuid() != 0:
        session.error(
            "the lab datacenter needs root (network namespaces, overlay mounts, systemd-nspawn); "
            "run this session as root"
        )


def _ensure_engine(session: nox.Session) -> Path:
    version = _pulumi_version()
    bin_dir = CACHE / "tools" / f"pulumi-{version}" / "bin"
    engine = bin_dir / "pulumi"
    if engine.is_file():
        out = subprocess.run([str(engine), "version"], capture_output=True, text=True, check=False)
        if out.stdout.strip() == f"v{version}":
            return engine
    session.log(f"building the Pulumi engine v{version} into {bin_dir}")
    session.run(
        "bash",
        str(ROOT / "tools" / "build-pulumi-engine.sh"),
        str(bin_dir),
        external=True,
        env={"PULUMI_ENGINE_VERSION": version},
    )
    return engine


ACTIONLINT = "v1.7.12"  # github.com/rhysd/actionlint, built from the Go module proxy


def _ensure_actionlint(session: nox.Session) -> Path:
    """actionlint (the workflows' syntax, expressions, job needs and runner labels) in the cache."""
    bin_dir = CACHE / "tools" / f"actionlint-{ACTIONLINT}"
    tool = bin_dir / "actionlint"
    if tool.is_file():
        return tool
    if shutil.which("go") is None:
        session.error("actionlint is built with Go: install Go (`apt-get install golang`) first")
    session.log(f"building actionlint {ACTIONLINT} into {bin_dir}")
    session.run(
        "go", "install", f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT}",
        external=True, env={"GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod"},
    )  # fmt: skip
    return tool


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session
def engine(session: nox.Session) -> None:
    """Build the pinned Pulumi engine (Go module proxy) into the shared cache, if missing."""
    session.log(f"engine: {_ensure_engine(session)}")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the lab: validate, provision, converge, verify, idempotence."""
    _ensure_root(session)
    _ensure_debian_packages(session)
    _install(session)
    _ensure_engine(session)
    session.run("gestic", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, Pulumi mock and lab integration tests (the lab tests need root)."""
    _ensure_debian_packages(session) if os.geteuid() == 0 else None
    _install(session, "test")
    if os.geteuid() == 0:
        _ensure_engine(session)
    # two xdist workers: the lab tests in two scopes, each on one worker and its own session lab,
    # in order; the unit tests on whichever worker is free (tests/conftest.py; a third lab on two
    # cores was slower); `-- -n 0` runs everything in this process
    session.run("pytest", "-n", "2", "--durations=30", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy, ansible-lint, robocop (the bots' suites) and actionlint (.github/workflows)."""
    _install(session, "lint")
    # the self-hosted runners' label, so that `runs-on: [self-hosted, linux, gestic]` is known
    session.run(str(_ensure_actionlint(session)), "-config-file", ".github/actionlint.yaml",
                external=True)  # fmt: skip
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("robocop", "check", "--config", "robots/robocop.toml", "robots",
                "tests/unit/data/rpa/robots")  # fmt: skip
    with session.chdir(ROOT / "playbooks"):  # so playbooks/ansible.cfg (roles_path) applies
        session.run("ansible-lint", "--profile", "production", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks into bench/results.json: lab, converge, RPA, monitoring, DR, chaos (`-- NAME`)."""
    _ensure_root(session)
    _ensure_debian_packages(session)
    _install(session)
    _ensure_engine(session)
    results = str(ROOT / "bench" / "results.json")
    only = set(session.posargs)  # e.g. `nox -s bench -- lab rpa`: only these benchmarks
    for name in ("lab", "converge", "rpa"):
        if not only or name in only:
            extra = ["--cold"] if name == "lab" else []  # the image built from scratch, too
            session.run(
                "python", str(ROOT / "bench" / f"{name}_bench.py"), "--output", results, *extra
            )
    on_lab = [n for n in ("monitoring", "dr") if not only or n in only]
    if on_lab:
        # These need a converged lab of their own: a separate lab name and state dir.
        env = {"GESTIC_LAB_NAME": "bench", "GESTIC_STATE_DIR": str(ROOT / ".gestic" / "bench")}
        session.run("gestic", "infra", "up", "--stack", "lab", "--quiet", env=env)
        try:
            session.run("gestic", "converge", env=env)
            for name in on_lab:
                session.run("python", str(ROOT / "bench" / f"{name}_bench.py"), "--output",
                            results, env=env)  # fmt: skip
            if "dr" in on_lab:  # 20 test drills killed at random points, each recovered clean
                session.run("python", str(ROOT / "bench" / "dr_chaos.py"), "--output", results,
                            env=env)  # fmt: skip
        finally:
            session.run("gestic", "infra", "destroy", "--stack", "lab", "--quiet", env=env)
    # the fast-feedback goals side by side, from whatever sections the file now holds
    session.run("python", str(ROOT / "bench" / "summary.py"), "--output", results)


# ---- change control (issue 6): the sessions the CI workflows run -------------------------------
ARTIFACTS = ROOT / "artifacts"


def _lab_session(session: nox.Session) -> None:
    """Root, the lab's Debian packages, the project and the engine (sessions that touch the lab)."""
    _ensure_root(session)
    _ensure_debian_packages(session)
    _install(session)
    _ensure_engine(session)


@nox.session
def preview(session: nox.Session) -> None:
    """Production stack under mocks with the policy rules (and the real preview where configured).

    With GESTIC_PRODUCTION_PREVIEW=1 (the institution's runners: vCenter and AWS credentials and
    PULUMI_BACKEND_URL in the environment, the provider plugins installed) also runs the real
    engine: `gestic infra preview --stack production` (with the policy pack); a missing plugin
    is named with its version and how to install it.
    """
    _install(session)
    out = ARTIFACTS / "pr"
    out.mkdir(parents=True, exist_ok=True)
    session.run(
        "gestic", "policy", "check", "--stack", "production", "--summary", str(out / "policy.md")
    )
    if os.environ.get("GESTIC_PRODUCTION_PREVIEW") == "1":
        _ensure_engine(session)
        session.run("gestic", "infra", "preview", "--stack", "production")


@nox.session
def converge_check(session: nox.Session) -> None:
    """Lab stack preview plus converge --check --diff of this branch on the CI lab (report)."""
    _lab_session(session)
    out = ARTIFACTS / "pr"
    out.mkdir(parents=True, exist_ok=True)
    session.run("gestic", "drift", "--expect-changes", "--report", str(out / "converge-check.md"))


@nox.session
def pr_summary(session: nox.Session) -> None:
    """The PR comment: job results, the change record, policy and converge-check reports."""
    _install(session)
    out = ARTIFACTS / "pr"
    out.mkdir(parents=True, exist_ok=True)
    base = os.environ.get("GESTIC_PR_BASE", "origin/main")
    record = out / "change-record.md"
    session.run("gestic", "change", "record", "--range", f"{base}..HEAD", "--output", str(record))
    parts = [f"**CI:** {os.environ.get('GESTIC_PR_RESULTS', '-')}", record.read_text()]
    downloaded = ARTIFACTS / "downloaded"
    for name in ("policy.md", "converge-check.md"):
        for found in sorted(downloaded.glob(f"*/{name}")) or [out / name]:
            if found.is_file():
                parts.append(found.read_text())
    (out / "summary.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    session.log(f"wrote {out / 'summary.md'}")


@nox.session
def apply(session: nox.Session) -> None:
    """After a merge: apply the lab stack, converge, verify, then prove nothing drifts."""
    _lab_session(session)
    session.run("gestic", "infra", "up", "--stack", "lab", "--quiet")
    session.run("gestic", "converge")
    session.run("gestic", "verify")
    session.run("gestic", "drift", "--report", str(ARTIFACTS / "drift.md"))


@nox.session
def drill(session: nox.Session) -> None:
    """A DR drill on the lab (`-- --scenario site-loss|host-loss [--test]`); evidence in dr/."""
    _lab_session(session)
    args = session.posargs or ["--scenario", "site-loss", "--test"]
    session.run("gestic", "drill", "--auto-approve", *args)


@nox.session
def drift(session: nox.Session) -> None:
    """Drift of the lab (stack refresh-preview and Ansible --check --diff); fails on drift."""
    _lab_session(session)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    session.run("gestic", "drift", "--report", str(ARTIFACTS / "drift.md"))


@nox.session
def change_record(session: nox.Session) -> None:
    """`gestic change record` for a range (pass `-- --range A..B`); Markdown and ledger."""
    _install(session)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    session.run(
        "gestic",
        "change",
        "record",
        *session.posargs,
        "--output",
        str(ARTIFACTS / "change-record.md"),
    )
