"""Procedimiento Gestión de Accesos: the hosts' access records, the report."""
