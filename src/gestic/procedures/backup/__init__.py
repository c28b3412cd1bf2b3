"""Backups as code: run, check and verify the services' restic backups on the hosts."""

from gestic.procedures.backup.ops import AgentCall, agent, backup_now, check, verify_restore

__all__ = ["AgentCall", "agent", "backup_now", "check", "verify_restore"]
