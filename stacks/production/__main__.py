"""The production stack as a plain Pulumi program (the institution's CI previews and applies it).

Config is read once, here: the non-secret settings from Pulumi.<stack>.yaml, the optional
per-site vCenter accounts from the secret `credentials` object.
"""

import pulumi

from gestic.model import load_model
from gestic.paths import repo_root
from gestic.production.config import NAMESPACE, from_pulumi
from gestic.production.program import production_program

_config = pulumi.Config(NAMESPACE)
production_program(
    load_model(repo_root() / "inventory" / "production", check_machine=False),
    from_pulumi(_config),
    credentials=_config.get_secret_object("credentials"),
)
