"""The DR plan as data (`dr/plan.yml`), validated and cross-checked against the model.

The plan (Guía Plan de Recuperación de Desastres de TI) says, for every service the DR site
recovers: in which ordered wave, after which other services, with which recovery targets (RTO
and RPO, in minutes, never looser than the service catalogue in the model), which units to
start and which probes prove it works; which endpoint names move to the DR site; and which
manual confirmations a real recovery waits for (a drill may approve them automatically).

Every problem is reported with the file and line that caused it, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from gestic.errors import PlanError, YamlSourceError
from gestic.model import Model
from gestic.model.yamlsrc import Key, Problems, SourceMap, load_yaml

PLAN_FILE = Path("dr") / "plan.yml"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
Unit = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9@._:-]+$")]
Hostname = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpProbe(_Frozen):
    """An HTTP GET that must answer `status` (and contain `contains`, if given)."""

    type: Literal["http"]
    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None
    timeout_seconds: int = Field(default=60, ge=1, le=3600)


class SqlProbe(_Frozen):
    """A query on the restored database whose first column must be at least `min_value`."""

    type: Literal["sql"]
    name: str = Field(min_length=1)
    database: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    query: str = Field(min_length=1)
    min_value: int = 1
    timeout_seconds: int = Field(default=60, ge=1, le=3600)
    requires: Literal["shared-ledger"] | None = None
    """`shared-ledger`: a probe of the shared RPA ledger's database, dropped from the plan of an
    environment whose model declares no gestic_rpa.ledger (its bots keep SQLite ledgers)."""


class FileProbe(_Frozen):
    """A restored file that must exist with the checksum recorded when it was backed up."""

    type: Literal["file"]
    name: str = Field(min_length=1)
    path: str = Field(pattern=r"^/")
    timeout_seconds: int = Field(default=10, ge=1, le=3600)


class UnitProbe(_Frozen):
    """A systemd unit of the RPA service that is active and keeps its main process running."""

    type: Literal["unit"]
    name: str = Field(min_length=1)
    unit: Unit
    settle_seconds: int = Field(default=5, ge=1, le=300)
    timeout_seconds: int = Field(default=120, ge=1, le=3600)


class LedgerProbe(_Frozen):
    """The RPA scheduler's own ledger URL names the ledger this recovery brought back (the DR
    copy of gestic_rpa.ledger, when the model shares one), opens, and `table` has rows enough."""

    type: Literal["ledger"]
    name: str = Field(min_length=1)
    table: str = Field(default="gestic_runs", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    min_value: int = Field(default=0, ge=0)
    timeout_seconds: int = Field(default=120, ge=1, le=3600)


Probe = Annotated[
    HttpProbe | SqlProbe | FileProbe | UnitProbe | LedgerProbe, Field(discriminator="type")
]
RPA_PROBES = ("unit", "ledger")
BOTS_GROUP = "bots"


class PlanService(_Frozen):
    """How one service is recovered and proven: targets, dependencies, units, probes.

    `kind: restore` (default): a service of the catalogue (gestic_services), restored from its
    backup on its DR host. `kind: rpa`: the RPA service, which is no catalogue entry: it runs on
    the bots hosts (group `bots`, one per site), its data is the shared ledger (restored with
    the ledger's service, which it must depend on), and recovering it points the DR site's
    scheduler at that copy, restarts it and probes it (unit and ledger probes)."""

    name: Name
    kind: Literal["restore", "rpa"] = "restore"
    rto_minutes: int = Field(gt=0)
    rpo_minutes: int = Field(gt=0)
    depends_on: tuple[Name, ...] = ()
    start: tuple[Unit, ...] = ()
    probes: tuple[Probe, ...] = Field(min_length=1)


class Wave(_Frozen):
    """Services recovered together, after every wave named in `after` has finished."""

    name: Name
    title: str = Field(min_length=1)
    after: tuple[Name, ...] = ()
    services: tuple[Name, ...] = Field(min_length=1)


class Endpoint(_Frozen):
    """A name clients use, pointed at the active host of `service` (lab: managed /etc/hosts)."""

    name: Hostname
    service: Name


class Step(_Frozen):
    """A manual confirmation the recovery waits for; a drill may approve it automatically."""

    id: Name
    text: str = Field(min_length=1)
    responsible: str = Field(min_length=1)
    at: Literal["declare", "before-wave", "before-switch", "after-probes"]
    wave: Name | None = None
    auto_approve_in_drill: bool = True


class Plan(_Frozen):
    """The whole DR plan, in recovery order."""

    version: Literal[1]
    title: str = Field(min_length=1)
    waves: tuple[Wave, ...] = Field(min_length=1)
    services: dict[str, PlanService]
    endpoints: tuple[Endpoint, ...] = ()
    steps: tuple[Step, ...] = ()
    excluded: dict[str, str] = Field(default_factory=dict)
    source: str = ""

    def wave_of(self, service: str) -> Wave:
        for wave in self.waves:
            if service in wave.services:
                return wave
        raise KeyError(service)

    def wave_batches(self) -> list[list[Wave]]:
        """The waves grouped into what can run at the same time: each batch holds every wave
        whose `after` waves are all in earlier batches (list order kept inside a batch).

        The loader only accepts `after` naming an earlier wave, so the first pending wave is
        always ready and this ends."""
        done: set[str] = set()
        pending = list(self.waves)
        batches: list[list[Wave]] = []
        while pending:
            ready = [w for w in pending if done.issuperset(w.after)]
            batches.append(ready)
            done.update(w.name for w in ready)
            pending = [w for w in pending if w not in ready]
        return batches

    def ordered_services(self) -> list[str]:
        """Every planned service in recovery order (wave by wave)."""
        return [s for wave in self.waves for s in wave.services]

    def restored_services(self) -> list[str]:
        """The planned catalogue services (restored from their backups), in recovery order."""
        return [s for s in self.ordered_services() if self.services[s].kind == "restore"]

    def dependency_closure(self, services: Iterable[str]) -> list[str]:
        """`services` and every planned service that depends on them, in recovery order.

        A service that depends on a lost one must move with it (hosts pair with the
        dependencies of their own site), so a host loss recovers the dependents too.
        """
        chosen = set(services)
        grew = True
        while grew:
            grew = False
            for svc in self.services.values():
                if svc.name not in chosen and chosen.intersection(svc.depends_on):
                    chosen.add(svc.name)
                    grew = True
        return [s for s in self.ordered_services() if s in chosen]

    def critical_path(self, service: str) -> list[str]:
        """The service and, recursively, what it depends on, dependencies first."""
        seen: list[str] = []

        def visit(name: str) -> None:
            for dep in self.services[name].depends_on:
                visit(dep)
            if name not in seen:
                seen.append(name)

        visit(service)
        return seen

    def endpoints_of(self, service: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.service == service]

    def steps_at(self, at: str, wave: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.at == at and (wave is None or s.wave == wave)]


def _validation_problems(exc: ValidationError, key: Key, problems: Problems) -> None:
    for err in exc.errors():
        # discriminated unions add the tag to the location; keep it readable
        loc = tuple(p for p in err["loc"] if p not in ("http", "sql", "file", *RPA_PROBES))
        msg = err["msg"]
        if err["type"] == "missing":
            msg = f"missing required key '{loc[-1]}'" if loc else msg
            loc = loc[:-1]
        problems.add((*key, *loc), msg)


def load_plan(path: Path, model: Model) -> Plan:
    """Read `path`, validate it and cross-check it with `model`; raise PlanError listing all."""
    smap = SourceMap()
    try:
        raw = load_yaml(path, smap=smap)
    except YamlSourceError as exc:
        raise PlanError([str(exc)]) from exc
    problems = Problems(smap, path)
    if not isinstance(raw, dict):
        raise PlanError([f"{path}:1: the plan must be a mapping (version, title, waves, ...)"])
    data: dict[str, Any] = dict(raw)
    services_raw = data.get("services")
    if isinstance(services_raw, dict):
        data["services"] = {
            k: {"name": k, **v} if isinstance(v, dict) else v for k, v in services_raw.items()
        }
    endpoints_raw = data.get("endpoints")
    if isinstance(endpoints_raw, dict):
        data["endpoints"] = [
            {"name": k, **v} if isinstance(v, dict) else v for k, v in endpoints_raw.items()
        ]
    try:
        plan = Plan.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        _validation_problems(exc, (), _EndpointKeys(problems, endpoints_raw))
        raise PlanError(problems.items) from exc
    _cross_check(plan, model, problems, endpoints_raw)
    if problems.items:
        raise PlanError(problems.items)
    return _for_environment(plan, model)


def _for_environment(plan: Plan, model: Model) -> Plan:
    """The plan without the probes of a shared ledger this environment does not have."""
    if model.rpa is not None and model.rpa.ledger is not None:
        return plan
    services = {
        name: svc.model_copy(
            update={
                "probes": tuple(
                    p for p in svc.probes if getattr(p, "requires", None) != "shared-ledger"
                )
            }
        )
        for name, svc in plan.services.items()
    }
    return plan.model_copy(update={"services": services})


class _EndpointKeys(Problems):
    """Maps ("endpoints", i, ...) back to the mapping key the YAML used for endpoint i."""

    def __init__(self, inner: Problems, endpoints_raw: Any) -> None:
        super().__init__(inner.smap, inner.fallback)
        self.items = inner.items
        self.names = list(endpoints_raw) if isinstance(endpoints_raw, dict) else []

    def add(self, key: Key, message: str) -> None:
        if len(key) >= 2 and key[0] == "endpoints" and isinstance(key[1], int) and self.names:
            key = ("endpoints", self.names[key[1]], *key[2:])
        super().add(key, message)


def _cross_check(plan: Plan, model: Model, problems: Problems, endpoints_raw: Any) -> None:
    """Rules across sections and against the model: references, order, targets, coverage."""
    waves = {w.name: i for i, w in enumerate(plan.waves)}
    placed: dict[str, int] = {}
    for i, wave in enumerate(plan.waves):
        if sum(1 for w in plan.waves if w.name == wave.name) > 1:
            problems.add(("waves", i, "name"), f"wave '{wave.name}' is declared twice")
        for j, dep in enumerate(wave.after):
            if dep not in waves:
                problems.add(("waves", i, "after", j), f"unknown wave '{dep}'")
            elif waves[dep] >= i:
                problems.add(
                    ("waves", i, "after", j),
                    f"wave '{wave.name}' runs after '{dep}', which comes later in the list "
                    "(or is itself): waves run in the order they are listed",
                )
        for j, member in enumerate(wave.services):
            if member in placed:
                problems.add(
                    ("waves", i, "services", j),
                    f"service '{member}' is already in wave '{plan.waves[placed[member]].name}'",
                )
                continue
            placed[member] = i
            if member not in plan.services:
                problems.add(
                    ("waves", i, "services", j),
                    f"service '{member}' has no entry under 'services' (targets, probes)",
                )
    before = _wave_ancestors(plan)
    for name, svc in plan.services.items():
        key: Key = ("services", name)
        if name not in placed:
            problems.add(key, f"service '{name}' is in no wave")
        _check_depends_on(plan, name, svc, key, placed, before, problems)
        if svc.kind == "rpa":
            _check_rpa_service(model, svc, key, problems)
            continue
        if name not in model.services:
            problems.add(key, f"unknown service '{name}' (not in gestic_services of the model)")
            continue
        declared = model.services[name]
        if not declared.dr_hosts:
            problems.add(
                key,
                f"service '{name}' has no dr_hosts in the model: the DR site cannot recover it "
                "(list it under 'excluded' with the reason)",
            )
        if svc.rto_minutes > declared.rto_minutes:
            problems.add(
                (*key, "rto_minutes"),
                f"RTO target {svc.rto_minutes} min is looser than the model's "
                f"{declared.rto_minutes} min for '{name}'",
            )
        if svc.rpo_minutes > declared.rpo_minutes:
            problems.add(
                (*key, "rpo_minutes"),
                f"RPO target {svc.rpo_minutes} min is looser than the model's "
                f"{declared.rpo_minutes} min for '{name}'",
            )
        ledger = model.rpa.ledger if model.rpa is not None else None
        for j, probe in enumerate(svc.probes):
            if probe.type == "sql" and probe.requires == "shared-ledger":
                if ledger is None:
                    continue  # not in this environment: load_plan drops it
                if (probe.database, name) != (ledger.database, ledger.service):
                    problems.add(
                        (*key, "probes", j, "requires"),
                        f"a shared-ledger probe queries the ledger's database "
                        f"'{ledger.database}' on its service '{ledger.service}' "
                        "(gestic_rpa.ledger)",
                    )
            if probe.type in RPA_PROBES:
                problems.add(
                    (*key, "probes", j, "type"),
                    f"a {probe.type} probe runs only on the RPA service (kind: rpa), on a bots "
                    "host; a restored service is proven by http, sql and file probes",
                )
            if probe.type == "sql" and probe.database not in declared.backup.databases:
                problems.add(
                    (*key, "probes", j, "database"),
                    f"database '{probe.database}' is not backed up for '{name}' "
                    f"(model backup.databases: {list(declared.backup.databases)})",
                )
            if probe.type == "file" and not any(
                probe.path == p or probe.path.startswith(p.rstrip("/") + "/")
                for p in declared.backup.paths
            ):
                problems.add(
                    (*key, "probes", j, "path"),
                    f"{probe.path} is under none of the backed-up paths of '{name}' "
                    f"({list(declared.backup.paths)})",
                )
    names = list(endpoints_raw) if isinstance(endpoints_raw, dict) else []
    for i, endpoint in enumerate(plan.endpoints):
        ekey: Key = ("endpoints", names[i] if i < len(names) else i, "service")
        if endpoint.service not in plan.services:
            problems.add(ekey, f"unknown service '{endpoint.service}' (not in the plan)")
        elif plan.services[endpoint.service].kind != "restore":
            problems.add(
                ekey, f"'{endpoint.service}' has no catalogue hosts an endpoint name could follow"
            )
    for i, step in enumerate(plan.steps):
        if step.at == "before-wave" and step.wave not in waves:
            problems.add(
                ("steps", i, "wave"),
                f"step '{step.id}' runs before a wave: 'wave' must name one of {list(waves)}",
            )
    for name in plan.excluded:
        if name not in model.services:
            problems.add(("excluded", name), f"unknown service '{name}'")
        elif name in plan.services:
            problems.add(("excluded", name), f"service '{name}' is both planned and excluded")
    for name in model.services:
        if name not in plan.services and name not in plan.excluded:
            problems.add(
                ("services",),
                f"service '{name}' of the model is neither planned nor listed under 'excluded'",
            )


def _check_depends_on(
    plan: Plan,
    name: str,
    svc: PlanService,
    key: Key,
    placed: dict[str, int],
    before: dict[str, set[str]],
    problems: Problems,
) -> None:
    for j, dep in enumerate(svc.depends_on):
        dkey: Key = (*key, "depends_on", j)
        if dep not in plan.services:
            problems.add(dkey, f"unknown service '{dep}' (not in the plan's services)")
        elif name in placed and dep in placed:
            mine, theirs = plan.waves[placed[name]].name, plan.waves[placed[dep]].name
            if theirs not in before[mine]:
                problems.add(
                    dkey,
                    f"'{name}' (wave '{mine}') depends on '{dep}' (wave '{theirs}'), "
                    f"but wave '{mine}' does not run after wave '{theirs}'",
                )


def _check_rpa_service(model: Model, svc: PlanService, key: Key, problems: Problems) -> None:
    """The RPA service: not a catalogue entry, bots hosts on both sites, after its ledger."""
    if svc.name in model.services:
        problems.add(
            (*key, "kind"),
            f"'{svc.name}' is a service of gestic_services: kind rpa is the RPA service of the "
            "bots hosts, which has no catalogue entry (use another name, or kind: restore)",
        )
        return
    primary, dr = service_hosts(model, svc)
    for hosts, site in ((primary, "primary"), (dr, "dr")):
        if not hosts:
            problems.add(
                key,
                f"the RPA service needs a bots host (group `{BOTS_GROUP}`) on a {site} site; "
                f"the model has {'none' if not primary + dr else ', '.join(primary + dr)}",
            )
    ledger = model.rpa.ledger if model.rpa is not None else None
    if ledger is not None:
        if ledger.service not in svc.depends_on:
            problems.add(
                (*key, "depends_on"),
                f"the RPA service's queue and ledger live on '{ledger.service}' "
                f"(gestic_rpa.ledger): it must depend on it (depends_on: [{ledger.service}])",
            )
        elif not model.services[ledger.service].dr_hosts:
            problems.add(
                (*key, "depends_on"),
                f"'{ledger.service}' (the RPA ledger's service) has no dr_hosts in the model",
            )
    for j, probe in enumerate(svc.probes):
        if probe.type not in RPA_PROBES:
            problems.add(
                (*key, "probes", j, "type"),
                "the RPA service restores nothing itself: its probes are "
                f"{' and '.join(RPA_PROBES)} (the ledger's service's sql probes prove its data)",
            )


def service_hosts(model: Model, svc: PlanService) -> tuple[list[str], list[str]]:
    """(hosts, DR hosts) of a planned service: the catalogue's, or for the RPA service the
    bots hosts on the primary sites and on the DR sites."""
    if svc.kind == "restore":
        declared = model.services[svc.name]
        return list(declared.hosts), list(declared.dr_hosts)
    role = {name: site.role for name, site in model.sites.items()}
    bots = sorted(h.name for h in model.hosts.values() if BOTS_GROUP in h.groups)
    return (
        [h for h in bots if role.get(model.hosts[h].site) == "primary"],
        [h for h in bots if role.get(model.hosts[h].site) == "dr"],
    )


def _wave_ancestors(plan: Plan) -> dict[str, set[str]]:
    """For each wave, every wave it runs after, directly or transitively."""
    result: dict[str, set[str]] = {}
    for wave in plan.waves:
        found: set[str] = set()
        for dep in wave.after:
            found.add(dep)
            found |= result.get(dep, set())
        result[wave.name] = found
    return result
