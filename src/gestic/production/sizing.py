"""Sizes on the platforms: the cloud instance type that fits a model size, and back again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class InstanceType:
    name: str
    cpus: int
    memory_mb: int


# Current-generation, non-burstable x86 types (compute, general purpose, memory optimised).
INSTANCE_TYPES: tuple[InstanceType, ...] = tuple(
    InstanceType(name=name, cpus=cpus, memory_mb=gib * 1024)
    for name, cpus, gib in (
        ("c6i.large", 2, 4),
        ("m6i.large", 2, 8),
        ("r6i.large", 2, 16),
        ("c6i.xlarge", 4, 8),
        ("m6i.xlarge", 4, 16),
        ("r6i.xlarge", 4, 32),
        ("c6i.2xlarge", 8, 16),
        ("m6i.2xlarge", 8, 32),
        ("r6i.2xlarge", 8, 64),
        ("c6i.4xlarge", 16, 32),
        ("m6i.4xlarge", 16, 64),
        ("r6i.4xlarge", 16, 128),
        ("c6i.8xlarge", 32, 64),
        ("m6i.8xlarge", 32, 128),
        ("r6i.8xlarge", 32, 256),
        ("m6i.16xlarge", 64, 256),
        ("r6i.16xlarge", 64, 512),
    )
)
_BY_NAME = {t.name: t for t in INSTANCE_TYPES}


def instance_type_for(cpus: int, memory_mb: int) -> InstanceType:
    """The smallest type (fewest CPUs, then least memory) with at least this size."""
    fitting = [t for t in INSTANCE_TYPES if t.cpus >= cpus and t.memory_mb >= memory_mb]
    if not fitting:
        raise ValueError(f"no instance type has {cpus} CPUs and {memory_mb} MB of memory")
    return min(fitting, key=lambda t: (t.cpus, t.memory_mb))


def instance_type(name: str) -> InstanceType | None:
    """The catalogue entry for a type name (None for a type gestic does not size)."""
    return _BY_NAME.get(name)
