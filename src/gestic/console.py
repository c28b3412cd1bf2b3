"""The one terminal every `gestic` command writes to.

`soft_wrap` keeps each message on one line when output is not a terminal (CI logs, pipes,
tests): rich would otherwise fold long lines at 80 columns, splitting paths and figures.
"""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
