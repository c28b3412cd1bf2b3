"""Prometheus' HTTP API, asked on the monitoring servers themselves over SSH.

The controller reaches an environment's hosts only by SSH (the lab's namespaces, a bastion), so
each query runs `curl` against Prometheus on the server's loopback through the environment's
host access, and parses the JSON answer here. Raw samples of a period are read day by day
(`selector[86400s]` at the end of each day): exact scrape timestamps, no interpolation, so a
gap in the data stays a gap.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlencode

from gestic.errors import MonitoringError

PORT: Final = 9090
CHUNK_S: Final = 86_400  # one query per day of raw samples

Labels = tuple[tuple[str, str], ...]
Series = dict[Labels, list[tuple[float, float]]]


class Runner(Protocol):
    """What the client needs of an environment's host access (`gestic.tools.ssh.SshAccess`)."""

    def run(self, host: str, command: str, *, timeout: float = 60) -> Any: ...


def labels_of(metric: Mapping[str, str]) -> Labels:
    return tuple(sorted(metric.items()))


@dataclass(frozen=True)
class PrometheusApi:
    """One monitoring server's Prometheus."""

    server: str
    access: Runner
    port: int = PORT
    timeout: float = 60

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urlencode(params)}"
        command = f"curl --silent --show-error --max-time {int(self.timeout)} {shlex.quote(url)}"
        try:
            done = self.access.run(self.server, command, timeout=self.timeout + 15)
        except OSError as exc:  # ssh itself missing
            raise MonitoringError(f"{self.server}: cannot run ssh: {exc}") from exc
        if done.returncode != 0:
            why = (done.stderr or done.stdout or "").strip().splitlines()
            raise MonitoringError(
                f"Prometheus on {self.server} (127.0.0.1:{self.port}) did not answer {path}: "
                f"{why[-1] if why else f'exit {done.returncode}'}"
            )
        try:
            answer = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise MonitoringError(
                f"Prometheus on {self.server} answered {path} with something that is not JSON"
            ) from exc
        if answer.get("status") != "success":
            raise MonitoringError(
                f"Prometheus on {self.server} refused {params.get('query', path)!r}: "
                f"{answer.get('errorType', '?')}: {answer.get('error', '?')}"
            )
        return answer["data"]

    def instant(self, query: str, at: float) -> Any:
        return self._get("/api/v1/query", {"query": query, "time": f"{at:.3f}"})

    def ready(self) -> bool:
        try:
            self.instant("vector(1)", 0)
        except MonitoringError:
            return False
        return True

    def raw(self, selector: str, start: float, end: float) -> Series:
        """Every raw sample of `selector` in (start, end], by series."""
        series: Series = {}
        for chunk_start, chunk_end in _chunks(start, end):
            width = max(1, round(chunk_end - chunk_start))
            data = self.instant(f"{selector}[{width}s]", chunk_end)
            if data.get("resultType") != "matrix":
                raise MonitoringError(
                    f"Prometheus on {self.server}: {selector}[...] gave {data.get('resultType')}"
                )
            for item in data["result"]:
                points = series.setdefault(labels_of(item["metric"]), [])
                points.extend((float(t), float(v)) for t, v in item["values"])
        for points in series.values():
            points.sort()
        return series


def _chunks(start: float, end: float) -> Iterator[tuple[float, float]]:
    cursor = start
    while cursor < end:
        upper = min(cursor + CHUNK_S, end)
        yield cursor, upper
        cursor = upper
