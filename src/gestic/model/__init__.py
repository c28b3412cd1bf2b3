"""The declarative model of the datacenter, read from the Ansible inventory and validated."""

from gestic.model.loader import load_model
from gestic.model.schema import BackupPolicy, Host, Lab, Model, Service, Site

__all__ = ["BackupPolicy", "Host", "Lab", "Model", "Service", "Site", "load_model"]
