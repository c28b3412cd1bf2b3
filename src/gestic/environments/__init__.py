"""An environment: its model, how its hosts are reached, its secrets."""
