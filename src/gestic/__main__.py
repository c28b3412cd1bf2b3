"""`python -m gestic` runs the gestic command."""

from gestic.cli.main import main

main()
