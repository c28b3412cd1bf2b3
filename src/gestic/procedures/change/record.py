"""The change record of the procedure *Control de Cambios y Despliegue*, for a git commit range.

For `A..B` it says what changed (files, then what they touch: hosts, roles, services, stacks, and
for the production model the resources a preview would change), the risk (the highest tier of
the services touched), how the change was verified (the ledger's runs at those commits:
converge, verify, infra, drift, policy, drills) and how to roll it back. It renders as Markdown
for a pull request description (Spanish by default, English on request) and is kept in the ledger.
"""

from __future__ import annotations

import fnmatch
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gestic import reports
from gestic.errors import ChangeRecordError, ModelError
from gestic.model import Model, load_model
from gestic.reports import Lang
from gestic.store.ledger import Ledger, RunRecord

#: Ledger kinds that count as verification of a change.
VERIFY_KINDS = ("converge", "converge.check", "verify", "drift", "policy.check")
VERIFY_PREFIXES = ("infra.", "drill", "backup")
RISK = {1: "high", 2: "medium", 3: "low"}


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ChangeRecordError(f"cannot run git in {root}: {exc}") from exc
    if proc.returncode != 0:
        raise ChangeRecordError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True, kw_only=True)
class Commit:
    sha: str
    subject: str
    author: str


@dataclass(frozen=True, kw_only=True)
class ChangedFile:
    status: str  # A, M, D, R...
    path: str


def parse_range(rev_range: str) -> tuple[str, str]:
    base, sep, head = rev_range.partition("..")
    if not sep or not base or not head or head.startswith("."):
        raise ChangeRecordError(f"range '{rev_range}' must look like BASE..HEAD (e.g. main..HEAD)")
    return base, head


def resolve(root: Path, rev: str) -> str:
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except ChangeRecordError as exc:
        raise ChangeRecordError(f"'{rev}' is not a commit of {root}") from exc


def commits(root: Path, base: str, head: str) -> list[Commit]:
    out = _git(root, "log", "--format=%H%x1f%s%x1f%an%x1e", f"{base}..{head}")
    found = []
    for entry in out.split("\x1e"):
        parts = entry.strip().split("\x1f")
        if len(parts) == 3:
            found.append(Commit(sha=parts[0], subject=parts[1], author=parts[2]))
    return found


def changed_files(root: Path, base: str, head: str) -> list[ChangedFile]:
    out = _git(root, "diff", "--name-status", "--no-renames", "-z", f"{base}...{head}")
    tokens = [t for t in out.split("\0") if t]
    return [
        ChangedFile(status=tokens[i][0], path=tokens[i + 1]) for i in range(0, len(tokens) - 1, 2)
    ]


def model_at(root: Path, rev: str, env: str, into: Path) -> Model | None:
    """The `inventory/<env>` model as of `rev` (None if it did not exist there)."""
    listing = _git(root, "ls-tree", "-r", "--name-only", rev, "--", f"inventory/{env}")
    files = [f for f in listing.splitlines() if f]
    if not files:
        return None
    for name in files:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_git(root, "show", f"{rev}:{name}"), encoding="utf-8")
    return load_model(into / "inventory" / env, check_machine=False)


# ---- what a change touches -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Play:
    file: str
    hosts: str
    roles: tuple[str, ...]


def read_plays(playbooks: Path) -> list[Play]:
    """Each play of `playbooks/plays/*.yml`: its host pattern and its roles."""
    plays = []
    for file in sorted((playbooks / "plays").glob("*.yml")):
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or []
        for play in data if isinstance(data, list) else []:
            if not isinstance(play, dict):
                continue
            roles = []
            for role in play.get("roles") or []:
                name = role.get("role") if isinstance(role, dict) else role
                if name:
                    roles.append(str(name))
            plays.append(
                Play(file=file.name, hosts=str(play.get("hosts", "all")), roles=tuple(roles))
            )
    return plays


def match_hosts(pattern: str, model: Model) -> set[str]:
    """Hosts an Ansible host pattern selects (union, `:&` intersection, `:!` exclusion)."""
    selected: set[str] = set()
    for raw in pattern.replace(",", ":").split(":"):
        term = raw.strip()
        if not term:
            continue
        op = term[0] if term[0] in "&!" else ""
        name = term[len(op) :]
        hosts = {
            h.name
            for h in model.hosts.values()
            if name in {"all", "*"}
            or fnmatch.fnmatch(h.name, name)
            or any(fnmatch.fnmatch(g, name) for g in h.groups)
            or fnmatch.fnmatch(h.site, name)
        }
        if op == "&":
            selected &= hosts
        elif op == "!":
            selected -= hosts
        else:
            selected |= hosts
    return selected


@dataclass(kw_only=True)
class Impact:
    """What the changed files reach."""

    hosts: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    stacks: set[str] = field(default_factory=set)
    checks: bool = False
    model_changes: list[str] = field(default_factory=list)
    production_preview: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _model_diff(before: Model | None, after: Model | None, env: str, impact: Impact) -> None:
    if after is None:
        impact.notes.append(f"inventory/{env} removed")
        return
    old_hosts = before.hosts if before else {}
    old_services = before.services if before else {}
    for name, host in after.hosts.items():
        if name not in old_hosts:
            impact.model_changes.append(f"{env}: host {name} added ({host.site})")
        elif old_hosts[name] != host:
            impact.model_changes.append(f"{env}: host {name} changed")
        else:
            continue
        impact.hosts.add(name)
    for name in sorted(set(old_hosts) - set(after.hosts)):
        impact.model_changes.append(f"{env}: host {name} removed")
        impact.hosts.add(name)
    for name, svc in after.services.items():
        if old_services.get(name) != svc:
            verb = "added" if name not in old_services else "changed"
            impact.model_changes.append(f"{env}: service {name} {verb}")
            impact.services.add(name)
    for name in sorted(set(old_services) - set(after.services)):
        impact.model_changes.append(f"{env}: service {name} removed")
        impact.services.add(name)
    old_policies = before.backup_policies if before else {}
    for name, pol in after.backup_policies.items():
        if old_policies.get(name) != pol:
            impact.model_changes.append(f"{env}: backup policy {name} changed")
            impact.services |= {s.name for s in after.services.values() if s.backup.policy == name}
    if before is not None and before.sites != after.sites:
        impact.model_changes.append(f"{env}: sites changed")
        impact.hosts |= set(after.hosts)


def classify(
    files: Sequence[ChangedFile], *, model: Model, plays: Sequence[Play], impact: Impact
) -> None:
    """Map each changed file to the roles, hosts and stacks it touches."""
    by_role: dict[str, set[str]] = {}
    by_play: dict[str, set[str]] = {}
    for play in plays:
        hosts = match_hosts(play.hosts, model)
        by_play.setdefault(play.file, set()).update(hosts)
        for role in play.roles:
            by_role.setdefault(role, set()).update(hosts)
    for f in files:
        parts = f.path.split("/")
        if parts[:2] == ["playbooks", "roles"] and len(parts) > 2:
            impact.roles.add(parts[2])
            impact.hosts |= by_role.get(parts[2], set())
        elif parts[:2] == ["playbooks", "plays"] and len(parts) > 2:
            impact.hosts |= by_play.get(parts[2], set())
            impact.roles |= {r for p in plays if p.file == parts[2] for r in p.roles}
        elif f.path in {"playbooks/site.yml", "playbooks/ansible.cfg"}:
            impact.hosts |= set(model.hosts)
        elif parts[0] == "inventory" and len(parts) > 1:
            impact.stacks.add("lab" if parts[1] == "lab" else parts[1])
        elif parts[:2] == ["stacks", "lab"] or parts[:3] == ["src", "gestic", "lab"]:
            impact.stacks.add("lab")
        elif (
            parts[:2] == ["stacks", "production"]
            or parts[:3] == ["src", "gestic", "production"]
            or parts[0] == "policy"
        ):
            impact.stacks.add("production")
        elif parts[0] == "verify":
            impact.checks = True


def risk_of(models: Sequence[Model], impact: Impact) -> tuple[str, int | None]:
    """The risk level and the highest tier (lowest number) among the services touched."""
    tiers = [m.services[s].tier for m in models for s in impact.services if s in m.services]
    for model in models:
        tiers += [s.tier for h in impact.hosts if h in model.hosts for s in model.services_on(h)]
    if "production" in impact.stacks and not tiers:
        tiers.append(2)  # the production platform itself changes: at least medium
    tier = min(tiers) if tiers else None
    return RISK.get(tier or 3, "low"), tier


def verification_runs(ledger: Ledger, shas: Iterable[str], limit: int = 500) -> list[RunRecord]:
    """Ledger runs (converge, verify, infra, drift, policy, drills) made at these commits."""
    wanted = set(shas)
    return [
        run
        for run in ledger.runs(limit=limit)
        if (run.commit or "").removesuffix("+dirty") in wanted
        and (run.kind in VERIFY_KINDS or run.kind.startswith(VERIFY_PREFIXES))
    ]


# ---- the record ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChangeRecord:
    rev_range: str
    base: str
    head: str
    commits: list[Commit]
    files: list[ChangedFile]
    impact: Impact
    risk: str
    tier: int | None
    runs: list[RunRecord]
    rollback: list[str]

    def as_dict(self) -> dict[str, Any]:
        i = self.impact
        return {
            "range": self.rev_range,
            "base": self.base,
            "head": self.head,
            "commits": [c.__dict__ for c in self.commits],
            "files": [f.__dict__ for f in self.files],
            "hosts": sorted(i.hosts),
            "roles": sorted(i.roles),
            "services": sorted(i.services),
            "stacks": sorted(i.stacks),
            "model_changes": i.model_changes,
            "production_preview": i.production_preview,
            "risk": self.risk,
            "tier": self.tier,
            "runs": [
                {"id": r.id, "kind": r.kind, "status": r.status, "commit": r.commit}
                for r in self.runs
            ],
            "rollback": self.rollback,
        }

    def markdown(self, lang: Lang = "es") -> str:
        t = reports.text("change", lang)
        i = self.impact
        none = t["none"]
        lines = [
            f"## {t['title']} `{self.rev_range}`",
            "",
            f"**{t['risk']}:** {t[self.risk]}"
            + (f" ({t['tier']} {self.tier})" if self.tier else f" ({t['no_tier']})"),
            "",
            f"### {t['what']}",
            "",
            f"- {t['commits']}: {len(self.commits)}",
            *[f"  - `{c.sha[:10]}` {c.subject} ({c.author})" for c in self.commits],
            f"- {t['files']}: {len(self.files)}",
            *[f"  - {f.status} `{f.path}`" for f in self.files],
            f"- {t['hosts']}: {', '.join(sorted(i.hosts)) or none}",
            f"- {t['roles']}: {', '.join(sorted(i.roles)) or none}",
            f"- {t['services']}: {', '.join(sorted(i.services)) or none}",
            f"- {t['stacks']}: {', '.join(sorted(i.stacks)) or none}",
        ]
        if i.model_changes:
            lines += [f"- {t['model']}:", *[f"  - {m}" for m in i.model_changes]]
        if i.production_preview:
            lines += [
                "",
                f"### {t['preview']}",
                "",
                "```diff",
                *i.production_preview,
                "```",
            ]
        lines += ["", f"### {t['verified']}", ""]
        if self.runs:
            lines += [f"| {t['run']} | {t['kind']} | {t['status']} | commit | {t['summary']} |"]
            lines += ["|---|---|---|---|---|"]
            lines += [
                f"| {r.id} | {r.kind} | {r.status} | `{(r.commit or '-')[:10]}` | {r.summary} |"
                for r in self.runs
            ]
        else:
            lines.append(t["no_runs"])
        lines += ["", f"### {t['rollback']}", "", "```bash", *self.rollback, "```"]
        if i.notes:
            lines += ["", *[f"> {n}" for n in i.notes]]
        return "\n".join(lines) + "\n"


def rollback_steps(
    base: str, head: str, commit_list: Sequence[Commit], impact: Impact
) -> list[str]:
    steps = [
        f"git revert --no-edit {base}..{head}   # {len(commit_list)} commit(s), newest first",
    ]
    if "lab" in impact.stacks or impact.hosts or impact.roles:
        steps.append("gestic infra up --stack lab")
    if impact.hosts or impact.roles:
        limit = ",".join(sorted(impact.hosts))
        steps.append(f"gestic converge --limit {limit}" if limit else "gestic converge")
        steps.append("gestic verify")
    if "production" in impact.stacks:
        steps += [
            "gestic policy check --stack production",
            "pulumi -C stacks/production up --stack production --policy-pack policy/  # CI",
        ]
    return steps


def build(
    *,
    root: Path,
    rev_range: str,
    ledger: Ledger | None,
    lab_env: str = "lab",
    production_diff: bool = True,
) -> ChangeRecord:
    """The change record of `rev_range` in the checkout at `root`."""
    base_ref, head_ref = parse_range(rev_range)
    base, head = resolve(root, base_ref), resolve(root, head_ref)
    commit_list = commits(root, base, head)
    files = changed_files(root, base, head)
    impact = Impact()
    with tempfile.TemporaryDirectory(prefix="gestic-change-") as tmp:
        models: dict[tuple[str, str], Model | None] = {}
        touched_envs = sorted(
            {f.path.split("/")[1] for f in files if f.path.startswith("inventory/")} | {lab_env}
        )
        for env in touched_envs:
            for side, rev in (("base", base), ("head", head)):
                try:
                    models[(env, side)] = model_at(root, rev, env, Path(tmp) / side)
                except ModelError as exc:
                    impact.notes.append(f"inventory/{env} at {side} is invalid: {exc}")
                    models[(env, side)] = None
            if any(f.path.startswith(f"inventory/{env}/") for f in files):
                _model_diff(models[(env, "base")], models[(env, "head")], env, impact)
        model = models.get((lab_env, "head")) or load_model(
            root / "inventory" / lab_env, check_machine=False
        )
        classify(files, model=model, plays=read_plays(root / "playbooks"), impact=impact)
        if production_diff and "production" in impact.stacks:
            impact.production_preview = _production_preview(
                root, models.get(("production", "base")), models.get(("production", "head"))
            )
            if not impact.production_preview:
                impact.production_preview = ["  (no resource changes)"]
        heads = [m for (_, side), m in models.items() if side == "head" and m is not None]
    heads = heads or [model]
    # services running on the touched hosts, in every environment that has them
    impact.services |= {
        s.name for m in heads for h in impact.hosts if h in m.hosts for s in m.services_on(h)
    }
    risk, tier = risk_of(heads, impact)
    runs = verification_runs(ledger, [c.sha for c in commit_list] + [head]) if ledger else []
    return ChangeRecord(
        rev_range=rev_range,
        base=base,
        head=head,
        commits=commit_list,
        files=files,
        impact=impact,
        risk=risk,
        tier=tier,
        runs=runs,
        rollback=rollback_steps(base[:12], head[:12], commit_list, impact),
    )


def _production_preview(root: Path, before: Model | None, after: Model | None) -> list[str]:
    """What `pulumi preview` of the production stack would show, from the mocked program."""
    from gestic.procedures.change.policy import declare, diff_declared, stack_config_path  # noqa: PLC0415
    from gestic.production.config import load_stack_file  # noqa: PLC0415

    if after is None:
        after = load_model(root / "inventory" / "production", check_machine=False)
    config = load_stack_file(stack_config_path(root, "production"))
    new = declare(after, config)
    old = declare(before, config) if before is not None else []
    return diff_declared(old, new).lines()
