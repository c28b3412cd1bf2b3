"""Procedimiento Pruebas de Vulnerabilidad: lynis reports, the report."""
