"""The one exception tree of gestic: every error a user can see derives from GesticError."""

from __future__ import annotations


class GesticError(Exception):
    """Base of every error gestic reports to its users."""


class ModelError(GesticError):
    """The declarative model (inventory) is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid model:\n" + "\n".join(f"  - {p}" for p in problems))


class LabError(GesticError):
    """The lab datacenter could not be built, inspected or removed."""


class NotRootError(LabError):
    """The lab needs root (network namespaces, mounts, systemd-nspawn)."""


class EngineError(GesticError):
    """The Pulumi engine is missing or a Pulumi operation failed."""


class AnsibleError(GesticError):
    """An Ansible run failed or could not start."""


class VerifyError(GesticError):
    """Verification (testinfra) found hosts that do not match the model."""


class LedgerError(GesticError):
    """The run ledger database is unavailable or inconsistent."""


class SecretsError(GesticError):
    """An environment's secrets are missing, cannot be decrypted or are incomplete."""


class NotALabError(GesticError):
    """A lab-only command (infra, lab, a real drill's host stop) ran on another environment."""


class UsageError(GesticError):
    """A command was called with options that do not go together or name nothing known."""


class PgClusterError(GesticError):
    """A throwaway PostgreSQL cluster (tests, benchmarks) could not be started or stopped."""


class MonitoringError(GesticError):
    """The monitoring (Prometheus) could not be queried, or its data do not cover a period."""


class MonitoringDataMissing(MonitoringError):
    """Part of a period has no monitoring data: the indicator is not computed over it.

    `gaps` lists, per service, the (start, end) spans without data (datetimes, UTC)."""

    def __init__(self, message: str, gaps: dict[str, list[tuple[object, object]]]) -> None:
        self.gaps = gaps
        super().__init__(message)


class IncidentError(GesticError):
    """The incident records could not be read or written, or an incident is malformed."""
