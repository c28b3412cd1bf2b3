"""The Pulumi adapter: the engine (CLI) and stacks through the Automation API."""
