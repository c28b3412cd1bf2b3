"""Bot manifests (`robots/<bot>/manifest.yaml`).

The RPA settings of an inventory (the indicator's target, the schedules' time zone, the enabled
bots) are the model's `rpa` section (`gestic_rpa`, gestic.model.schema.Rpa).

A manifest says what a bot's queues are, when it runs, and its service level::

    name: conciliacion-pagos
    description: Conciliación de pagos bancarios contra la cartera
    owner: cartera
    queue: conciliacion-pagos.pagos      # the queue whose items the SLA is measured on
    schedule: "30 7 * * 1-5"             # cron: minute hour day-of-month month day-of-week
    sla_minutes: 60                      # time from item creation to done
    max_attempts: 3                      # APPLICATION failures are retried up to this
    lease_seconds: 60                    # a dead robot's item is picked up after this
    backoff_seconds: 30                  # first retry delay; doubles each retry
    max_robot_failures: 5                # robots in a row that finish no item: give up
    robot_backoff_seconds: 2             # wait before the next robot; doubles, capped at 60
    steps:                               # one suite per step; outputs feed the next step
      - name: productor
        queue: conciliacion-pagos.archivos
        suite: tasks/productor.robot
        seed: devdata/work-items-in/pagos/work-items.json
        # inbox: pagos-banco               # a scheduled run: the partner's files instead
        # access_report: access-report.json  # or: this seed file is the environment's
      - name: consumidor
        queue: conciliacion-pagos.pagos
        suite: tasks/consumidor.robot

Every problem is reported with the manifest's file, the key and its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gestic.errors import ManifestError, PayloadError, YamlSourceError
from gestic.model.rpa_schema import BotName
from gestic.model.yamlsrc import Problems, SourceMap, load_yaml
from gestic.rpa.payload import check_payload

MANIFEST = "manifest.yaml"

QueueName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9.-]{1,100}$")]
StepName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")]
"""The name of a work item's file (no directory)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Frozen):
    name: StepName
    queue: QueueName
    suite: str = Field(min_length=1)
    #: The most robots this step may run at once (a step that aggregates runs one).
    workers: int | None = Field(default=None, ge=1, le=32)
    #: Work items (Robocorp devdata format) that a run of the bot starts this step with.
    seed: str | None = None
    #: The environment's inbox (gestic_rpa.intake.inboxes) whose new files a scheduled run
    #: starts this step with, one item each (`seed` stays for runs without the inbox).
    inbox: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")] | None = None
    #: The file of the seed's items that is the environment's access report
    #: (`gestic access report`'s JSON): a run with `--access-report fresh|published`, and every
    #: scheduled run, put the environment's report there in place of the seed's fixture.
    access_report: FileName | None = None
    #: How long one robot of this step may run before it is stopped.
    timeout_minutes: float = Field(default=30, gt=0)


class Manifest(_Frozen):
    name: BotName
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    queue: QueueName
    schedule: str | None = None
    sla_minutes: float = Field(gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    lease_seconds: float = Field(default=60, ge=2)
    backoff_seconds: float = Field(default=30, ge=0)
    backoff_max_seconds: float = Field(default=3600, ge=0)
    #: Robots of a step that may end in a row without finishing an item (crashed at start,
    #: exited at once with items ready) before the run gives up on the step.
    max_robot_failures: int = Field(default=5, ge=1, le=100)
    #: Wait before starting a robot again after one such robot; doubles each time, capped.
    robot_backoff_seconds: float = Field(default=2, ge=0)
    robot_backoff_max_seconds: float = Field(default=60, ge=0)
    steps: tuple[Step, ...] = Field(min_length=1)
    #: Robot Framework variables every run gets (`gestic rpa run --var` overrides them).
    variables: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")], str] = {}


@dataclass(frozen=True, kw_only=True)
class Bot:
    """A validated bot: its manifest and where it lives."""

    manifest: Manifest
    root: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def libraries(self) -> Path:
        return self.root / "libraries"

    def suite(self, step: Step) -> Path:
        return (self.root / step.suite).resolve()

    def step(self, name: str) -> Step:
        for step in self.manifest.steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self.manifest.steps)
        raise ManifestError(f"bot {self.name} has no step {name!r} (steps: {known})")

    def output_of(self, step: Step) -> Step | None:
        """The step that takes `step`'s outputs (None for the last step)."""
        steps = self.manifest.steps
        index = steps.index(step)
        return steps[index + 1] if index + 1 < len(steps) else None

    @property
    def final_queue(self) -> str:
        """Where the last step's outputs (the bot's records) are kept."""
        return f"{self.name}.salidas"


def cron_problem(expr: str) -> str | None:
    """Why `expr` is not a five-field cron expression, or None if it is one."""
    fields = expr.split()
    if len(fields) != 5:
        return (
            f"schedule '{expr}' must have 5 fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}"
        )
    if not croniter.is_valid(expr):
        return f"schedule '{expr}' is not a valid cron expression"
    return None


def load_bot(root: Path) -> Bot:
    """Read and validate `root/manifest.yaml` (ManifestError lists every problem)."""
    root = root.resolve()
    file = root / MANIFEST
    if not file.is_file():
        raise ManifestError(f"{file}: bot manifest not found")
    smap = SourceMap()
    try:
        data = load_yaml(file, smap=smap)
    except YamlSourceError as exc:
        raise ManifestError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{file}:1: a manifest must be a mapping")
    problems = Problems(smap, f"{file}:1")
    manifest = problems.validate(Manifest, data)
    if manifest is None:
        raise ManifestError(_invalid(problems))
    add = problems.add

    if manifest.name != root.name:
        add(("name",), f"must be the bot's directory name '{root.name}'")
    queues = [s.queue for s in manifest.steps]
    if manifest.queue not in queues:
        add(("queue",), f"must be the queue of one of the steps ({', '.join(queues)})")
    names = [s.name for s in manifest.steps]
    for i, step in enumerate(manifest.steps):
        if names.count(step.name) > 1:
            add(("steps", i, "name"), f"step name '{step.name}' is used twice")
        if queues.count(step.queue) > 1:
            add(("steps", i, "queue"), f"queue '{step.queue}' is used by two steps")
        if not (root / step.suite).is_file():
            add(("steps", i, "suite"), f"suite file {root / step.suite} not found")
        if step.seed is not None and not (root / step.seed).is_file():
            add(("steps", i, "seed"), f"seed work items {root / step.seed} not found")
        if step.inbox is not None and i > 0:
            add(("steps", i, "inbox"), "only the first step takes files from an inbox")
        if step.access_report is not None:
            for problem in _access_report_problems(root, step, first=i == 0):
                add(("steps", i, "access_report"), problem)
    if manifest.schedule is not None and (why := cron_problem(manifest.schedule)):
        add(("schedule",), why)
    if manifest.backoff_max_seconds < manifest.backoff_seconds:
        add(("backoff_max_seconds",), "must not be shorter than backoff_seconds")
    if manifest.robot_backoff_max_seconds < manifest.robot_backoff_seconds:
        add(("robot_backoff_max_seconds",), "must not be shorter than robot_backoff_seconds")
    if problems.items:
        raise ManifestError(_invalid(problems))
    return Bot(manifest=manifest, root=root)


def _access_report_problems(root: Path, step: Step, *, first: bool) -> list[str]:
    """Why a step's `access_report` cannot be used (none: it can)."""
    if not first:
        return ["only the first step starts from the access report"]
    if step.inbox is not None:
        return ["a step starts from an inbox or from the access report, not both"]
    if step.seed is None:
        return ["needs the step's seed: its items carry the other inputs, and the access "
                "report replaces their file of this name"]  # fmt: skip
    try:
        items = json.loads((root / step.seed).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # the seed's own problem is reported when it is read
    if not isinstance(items, list) or not items:
        return [f"the seed {step.seed} has no work items to put the access report in"]
    missing = [
        i
        for i, item in enumerate(items)
        if not isinstance(item, dict)
        or not isinstance(item.get("files"), dict)
        or step.access_report not in item["files"]
    ]
    if missing:
        where = ", ".join(str(i) for i in missing)
        return [f"the seed's item(s) {where} have no file '{step.access_report}' to replace"]
    return []


def _invalid(problems: Problems) -> str:
    return "invalid bot manifest:\n" + "\n".join(f"  - {p}" for p in problems.items)


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """The bots under a robots directory: the valid ones, and why the others are not."""

    robots_dir: Path
    bots: dict[str, Bot]
    #: Directory name -> the manifest's problems, for every bot whose manifest is invalid.
    broken: dict[str, ManifestError]

    def bot(self, name: str) -> Bot:
        """The bot named `name` (ManifestError with its problems if its manifest is invalid)."""
        if name in self.broken:
            raise self.broken[name]
        if name not in self.bots:
            known = ", ".join(sorted(self.bots)) or "none"
            raise ManifestError(f"no bot named {name!r} in {self.robots_dir} (bots: {known})")
        return self.bots[name]

    def require_valid(self) -> dict[str, Bot]:
        """Every bot, or one ManifestError listing each invalid manifest."""
        if self.broken:
            raise ManifestError("\n".join(str(e) for e in self.broken.values()))
        return self.bots


def catalog(robots_dir: Path) -> Catalog:
    """Every bot under `robots_dir` (a directory with a manifest.yaml), each validated alone:
    one invalid manifest does not hide the other bots (the scheduler keeps running them)."""
    if not robots_dir.is_dir():
        raise ManifestError(f"{robots_dir}: robots directory not found")
    bots: dict[str, Bot] = {}
    broken: dict[str, ManifestError] = {}
    for child in sorted(robots_dir.iterdir()):
        if (child / MANIFEST).is_file():
            try:
                bot = load_bot(child)
            except ManifestError as exc:
                broken[child.name] = exc
                continue
            bots[bot.name] = bot
    return Catalog(robots_dir=robots_dir, bots=bots, broken=broken)


def discover(robots_dir: Path) -> dict[str, Bot]:
    """Every bot under `robots_dir`, all valid (else ManifestError listing every problem)."""
    return catalog(robots_dir).require_valid()


@dataclass(frozen=True, kw_only=True)
class SeedItem:
    """One input work item from a Robocorp devdata `work-items.json`."""

    payload: Any
    files: dict[str, bytes]


def load_seed(file: Path) -> list[SeedItem]:
    """Read work items in Robocorp's devdata format: [{"payload": ..., "files": {name: path}}].

    File paths are relative to the JSON file's directory.
    """
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read work items: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{file}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, list):
        raise ManifestError(f"{file}:1: work items must be a JSON list of objects")
    items = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or set(entry) - {"payload", "files"}:
            raise ManifestError(f"{file}: item {i}: expected an object with payload and files")
        files: dict[str, bytes] = {}
        raw_files = entry.get("files") or {}
        if not isinstance(raw_files, dict):
            raise ManifestError(f"{file}: item {i}: files must map names to paths")
        for name, rel in raw_files.items():
            path = (file.parent / str(rel)).resolve()
            try:
                files[str(name)] = path.read_bytes()
            except OSError as exc:
                raise ManifestError(
                    f"{file}: item {i}: file {name!r} ({path}): {exc.strerror}"
                ) from exc
        try:
            payload = check_payload(entry.get("payload"), what=f"item {i}: payload")
        except PayloadError as exc:
            raise ManifestError(f"{file}: {exc}") from exc
        items.append(SeedItem(payload=payload, files=files))
    return items
