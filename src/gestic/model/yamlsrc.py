"""YAML loading that remembers where every key came from, so errors can name file and line.

Every input is bounded before it can cost much: the file's size, its nesting depth (checked on
the parser's event stream, which is not recursive, before any tree is built) and the number of
values it expands to (YAML aliases can make a small file expand exponentially: "billion
laughs"); a recursive alias is refused. Each limit, like an encoding or syntax error, is reported
as `file:line: ...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gestic.errors import YamlSourceError

Key = tuple[str | int, ...]
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class Origin:
    """A place in a source file (1-based line)."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(kw_only=True)
class SourceMap:
    """Maps a key path inside the merged model to the file and line that defined it."""

    origins: dict[Key, Origin] = field(default_factory=dict)

    def locate(self, key: Key) -> Origin | None:
        """The origin of `key`, or of its nearest parent that has one."""
        for end in range(len(key), 0, -1):
            if (found := self.origins.get(key[:end])) is not None:
                return found
        return None


class Problems:
    """Collects problems, each located by the source map: `file:line: dotted.key: message`.

    The one problem collector of every YAML source (the inventory's model, the DR plan, the bot
    manifests): a key the map does not know is reported at `fallback` (the file, or `file:1`).
    """

    def __init__(self, smap: SourceMap, fallback: Path | str) -> None:
        self.smap = smap
        self.fallback = fallback
        self.items: list[str] = []

    def add(self, key: Key, message: str) -> None:
        origin = self.smap.locate(key)
        where = str(origin) if origin else str(self.fallback)
        dotted = ".".join(str(k) for k in key) or "(top)"
        self.items.append(f"{where}: {dotted}: {message}")

    def validate(self, cls: type[T], data: Any, key: Key = ()) -> T | None:
        """`data` as a `cls`, or None with each validation error added under `key`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.add((*key, *err["loc"]), err["msg"])
            return None


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one YAML file of the model may hold (far above what any real inventory needs)."""

    max_bytes: int = 1 << 20  # 1 MiB: the lab's largest settings file is ~6 KB
    max_depth: int = 64
    max_values: int = 100_000  # after alias expansion


LIMITS = Limits()


class _Budget:
    """Counts the values built from one file, so alias expansion cannot run away."""

    def __init__(self, file: Path, limit: int) -> None:
        self.file, self.limit, self.used = file, limit, 0
        self.open: set[int] = set()  # nodes being built right now (a recursive alias)

    def spend(self, node: yaml.Node) -> None:
        self.used += 1
        if self.used > self.limit:
            raise YamlSourceError(
                f"{self.file}:{node.start_mark.line + 1}: the file expands to more than "
                f"{self.limit} values (aliases repeating anchors?): refused"
            )


def _construct(
    node: yaml.Node,
    file: Path,
    prefix: Key,
    smap: SourceMap,
    scalars: yaml.SafeLoader,
    budget: _Budget,
) -> Any:
    budget.spend(node)
    smap.origins.setdefault(prefix, Origin(file=file, line=node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in budget.open:
            raise YamlSourceError(
                f"{file}:{node.start_mark.line + 1}: a recursive alias (an anchor used inside "
                "itself): refused"
            )
        budget.open.add(id(node))
        try:
            return _construct_collection(node, file, prefix, smap, scalars, budget)
        finally:
            budget.open.discard(id(node))
    try:
        return scalars.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise YamlSourceError(f"{file}:{node.start_mark.line + 1}: {exc.problem}") from exc


def _construct_collection(
    node: yaml.MappingNode | yaml.SequenceNode,
    file: Path,
    prefix: Key,
    smap: SourceMap,
    scalars: yaml.SafeLoader,
    budget: _Budget,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise YamlSourceError(f"{file}:{line}: a key must be a plain value")
            key = scalars.construct_object(key_node)
            if key in result:
                line = key_node.start_mark.line + 1
                raise YamlSourceError(f"{file}:{line}: duplicate key '{key}'")
            child = (*prefix, key)
            smap.origins[child] = Origin(file=file, line=key_node.start_mark.line + 1)
            result[key] = _construct(value_node, file, child, smap, scalars, budget)
        return result
    return [
        _construct(item, file, (*prefix, i), smap, scalars, budget)
        for i, item in enumerate(node.value)
    ]


def _read_text(file: Path, limits: Limits) -> str:
    try:
        size = file.stat().st_size
        if size > limits.max_bytes:
            raise YamlSourceError(
                f"{file}:1: {size} bytes, more than the {limits.max_bytes} a model file may have"
            )
        raw = file.read_bytes()
    except OSError as exc:
        raise YamlSourceError(f"{file}: cannot read: {exc.strerror}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlSourceError(
            f"{file}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _check_depth(text: str, file: Path, limits: Limits) -> None:
    """Refuse nesting deeper than the limit, reading parser events (no recursion, no tree)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.max_depth:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise YamlSourceError(
                    f"{file}:{line}: nested more than {limits.max_depth} levels deep: refused"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(file: Path, *, prefix: Key = (), smap: SourceMap, limits: Limits = LIMITS) -> Any:
    """Load one YAML document from `file`, recording each key's line under `prefix`."""
    text = _read_text(file, limits)
    try:
        _check_depth(text, file, limits)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSourceError(f"{file}:{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise YamlSourceError(f"{file}:1: invalid YAML: {exc}") from exc
    if node is None:
        return None
    return _construct(
        node, file, prefix, smap, yaml.SafeLoader(""), _Budget(file, limits.max_values)
    )
