"""Thin adapters to the tools gestic drives (SSH; Ansible, Pulumi and testinfra follow)."""
