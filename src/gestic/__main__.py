"""`python -m gestic` runs the gestic command."""

from gestic.cli import main

main()
