"""YAML loading that remembers where every key came from, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Key = tuple[str | int, ...]


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


class YamlSourceError(Exception):
    """A YAML file could not be parsed or has a duplicate key (message names file and line)."""


def _construct(
    node: yaml.Node, file: Path, prefix: Key, smap: SourceMap, scalars: yaml.SafeLoader
) -> Any:
    smap.origins.setdefault(prefix, Origin(file=file, line=node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = scalars.construct_object(key_node)
            if key in result:
                line = key_node.start_mark.line + 1
                raise YamlSourceError(f"{file}:{line}: duplicate key '{key}'")
            child = (*prefix, key)
            smap.origins[child] = Origin(file=file, line=key_node.start_mark.line + 1)
            result[key] = _construct(value_node, file, child, smap, scalars)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, file, (*prefix, i), smap, scalars) for i, item in enumerate(node.value)
        ]
    return scalars.construct_object(node, deep=True)


def load_yaml(file: Path, *, prefix: Key = (), smap: SourceMap) -> Any:
    """Load one YAML document from `file`, recording each key's line under `prefix`."""
    try:
        node = yaml.compose(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSourceError(f"{file}:{line}: invalid YAML: {exc.problem}") from exc
    except OSError as exc:
        raise YamlSourceError(f"{file}: cannot read: {exc.strerror}") from exc
    if node is None:
        return None
    return _construct(node, file, prefix, smap, yaml.SafeLoader(""))
