"""The production stack project (this file lets mypy tell its __main__ from the lab stack's)."""
