"""Procedimiento Control de Cambios: change record, drift, policy check."""
