"""The one exception tree of gestic: every error a user can see derives from GesticError."""

from __future__ import annotations


class GesticError(Exception):
    """Base of every error gestic reports to its users."""


# --- The model (inventory) and the YAML files it is read from.


class ModelError(GesticError):
    """The declarative model (inventory) is invalid; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid model:\n" + "\n".join(f"  - {p}" for p in problems))


class YamlSourceError(GesticError):
    """A YAML file could not be parsed or has a duplicate key (message names file and line)."""


# --- The lab datacenter.


class LabError(GesticError):
    """The lab datacenter could not be built, inspected or removed."""


class NotRootError(LabError):
    """The lab needs root (network namespaces, mounts, systemd-nspawn)."""


# --- The tools gestic drives: Pulumi, Ansible, testinfra.


class EngineError(GesticError):
    """The Pulumi engine is missing or a Pulumi operation failed."""


class AnsibleError(GesticError):
    """An Ansible run failed or could not start."""


class VerifyError(GesticError):
    """Verification (testinfra) found hosts that do not match the model."""


class TunnelError(GesticError):
    """An SSH port forward (gestic.tools.ssh_tunnel) could not be opened or does not answer."""


# --- Drift and policy of the stacks.


class DriftFound(GesticError):
    """The environment differs from the repository."""


class PolicyViolation(GesticError):
    """A mandatory policy rule is violated."""


class PolicyCheckError(GesticError):
    """The production program could not be run under mocks (bad model or config)."""


# --- The run ledger, secrets, command use and throwaway databases.


class LedgerError(GesticError):
    """The run ledger database is unavailable or inconsistent."""


class OperationLockedError(GesticError):
    """Another run holds the environment's lock (gestic.store.operation_lock), or a bad --wait."""


class SecretsError(GesticError):
    """An environment's secrets are missing, cannot be decrypted or are incomplete."""


class NotALabError(GesticError):
    """A lab-only command (infra, lab, a real drill's host stop) ran on another environment."""


class UsageError(GesticError):
    """A command was called with options that do not go together or name nothing known."""


class PgClusterError(GesticError):
    """A throwaway PostgreSQL cluster (tests, benchmarks) could not be started or stopped."""


# --- The production stacks (vSphere): configuration and plan.


class ConfigError(GesticError):
    """The production stack configuration is invalid (every problem names file, key and line)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid production stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class ProductionPlanError(GesticError, ValueError):
    """The model cannot be turned into production VMs (the message names what to fix)."""


# --- Compliance evidence: the reports' words, change records, vulnerability tests, log review,
# process map.


class LocaleError(GesticError):
    """A report's locale file (templates/locale/<report>.<lang>.yml) is missing or invalid, or
    lacks a key (the message names file and key)."""


class ChangeRecordError(GesticError):
    """The change record could not be built (bad range, not a git checkout...)."""


class VulnscanError(GesticError):
    """A lynis report cannot be read, or the environment sets no minimum hardening index."""


class LogReviewError(GesticError):
    """The log review could not read its period or the central logs."""


class ProcessMapError(GesticError):
    """docs/process.yml is invalid, names a path that does not exist, or the page is stale."""


# --- Backups and disaster recovery.


class DrError(GesticError):
    """A backup, restore verification or drill could not be prepared or run."""


class PlanError(DrError):
    """The DR plan (dr/plan.yml) is invalid; every problem names file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid DR plan:\n" + "\n".join(f"  - {p}" for p in problems))


class DrillError(DrError):
    """A drill failed: a wave, a service, a probe, a breached target or a dirty cleanup."""


# --- Robotic process automation.


class RpaError(GesticError):
    """A bot could not be loaded, run, scheduled or reported on."""


class ManifestError(RpaError):
    """A bot's manifest is invalid (the message names file, key, line), or RPA is not set up."""


class QueueError(RpaError):
    """The work-item queue database is unavailable or refused an operation."""


class LeaseLostError(QueueError):
    """A worker tried to release an item it no longer holds (its lease expired and was taken)."""


class FileTakenError(QueueError):
    """A file dropped in an inbox was taken into a queue before (gestic.rpa.intake)."""


class IntakeError(RpaError):
    """A partner's inbox could not be reached, listed or read (gestic.rpa.sftp_inbox)."""


class PayloadError(QueueError):
    """A work item's payload is not a JSON object of bounded size."""


class AccessReportError(RpaError):
    """An access report could not be published, or none recent enough has been published for
    a bot that reviews it (gestic.procedures.access.published)."""


# --- Monitoring and incidents.


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
