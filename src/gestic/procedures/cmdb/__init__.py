"""Procedimiento Activos y Configuración TI: the asset inventory."""
