"""Each benchmark writes its own section of one JSON results file (bench/results.json)."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_section(path: Path, name: str, data: dict[str, Any]) -> None:
    """Replace section `name` of the results file, keeping the other sections."""
    document: dict[str, Any] = {}
    if path.is_file():
        document = json.loads(path.read_text())
    document["machine"] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    document[name] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        # what else the machine was doing: figures taken under load are slower, not wrong
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        **data,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
