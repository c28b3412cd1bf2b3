"""Runtime primitives of the lab datacenter: host image, namespaces and bridges, nspawn hosts.

Everything here acts on the real machine (needs root) and is idempotent, so the Pulumi
dynamic providers of the lab stack can call it again after a partial failure.
"""
