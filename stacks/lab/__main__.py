"""The lab stack as a plain Pulumi program (gestic runs the same program inline)."""

from gestic.lab.program import lab_program, settings_for
from gestic.model import load_model
from gestic.paths import cache_dir, repo_root, state_dir

model = load_model(repo_root() / "inventory" / "lab")
lab_program(model, settings_for(model, state_dir=state_dir(), cache_dir=cache_dir()))
