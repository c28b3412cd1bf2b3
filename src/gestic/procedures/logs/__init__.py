"""Procedimiento Revisión de Logs: fetch, parse and review the central logs."""
