"""`gestic failback`: return service to the primary site after a drill or a real failover."""

from gestic.commands.drill import failback as COMMAND

__all__ = ["COMMAND"]
