"""Samples into timelines: when a service was up, down, or not measured at all.

A probe's samples come every scrape interval `I`. A sample's state holds until the next sample
when that comes within `2 I` (one late or lost scrape is tolerated); otherwise the sample
stands for `I` only and the rest of the gap has no data. "No data" is never counted as up:
the indicator refuses to compute over it. Times are POSIX seconds (floats) throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal

State = Literal["up", "down", "nodata"]
UP: Final[State] = "up"
DOWN: Final[State] = "down"
NODATA: Final[State] = "nodata"


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    state: State

    @property
    def seconds(self) -> float:
        return self.end - self.start


Timeline = list[Span]
"""Non-overlapping spans in time order that cover a period from its start to its end."""


def _compact(spans: Iterable[Span]) -> Timeline:
    """Drop empty spans and join neighbours in the same state."""
    out: Timeline = []
    for span in spans:
        if span.end <= span.start:
            continue
        if out and out[-1].state == span.state and out[-1].end >= span.start:
            out[-1] = Span(out[-1].start, span.end, span.state)
        else:
            out.append(span)
    return out


def from_samples(
    samples: Sequence[tuple[float, float]], *, interval: float, start: float, end: float
) -> Timeline:
    """The timeline of one series over [start, end): value 1 is up, anything else down."""
    if end <= start:
        return []
    tolerance = 2 * interval
    points = sorted((t, v) for t, v in samples if start - tolerance < t < end)
    spans: list[Span] = []
    cursor = start
    for i, (t, value) in enumerate(points):
        state: State = UP if value == 1 else DOWN
        following = points[i + 1][0] if i + 1 < len(points) else None
        if t > cursor:
            spans.append(Span(cursor, t, NODATA))
        holds_until = following if following is not None and following - t <= tolerance \
            else t + interval  # fmt: skip
        span_start = max(t, start)
        span_end = min(holds_until, end)
        if span_end > span_start:
            spans.append(Span(span_start, span_end, state))
        cursor = max(cursor, span_end)
    if cursor < end:
        spans.append(Span(cursor, end, NODATA))
    return _compact(spans)


def _breakpoints(timelines: Sequence[Timeline]) -> list[float]:
    return sorted({edge for tl in timelines for span in tl for edge in (span.start, span.end)})


def _state_at(timeline: Timeline, t: float) -> State:
    for span in timeline:
        if span.start <= t < span.end:
            return span.state
    return NODATA


def combine(timelines: Sequence[Timeline], rule: str) -> Timeline:
    """Pointwise combination of timelines over the same period.

    `fill`: the first timeline that has data at a time decides (the primary monitoring server,
    then the next); `any`: up if any is up, else no data if any has none, else down (a service
    up while at least one of its hosts answers)."""
    if not timelines:
        return []
    if len(timelines) == 1:
        return list(timelines[0])
    edges = _breakpoints(timelines)
    out: list[Span] = []
    for left, right in pairwise(edges):
        mid = (left + right) / 2
        states = [_state_at(tl, mid) for tl in timelines]
        if rule == "fill":
            state = next((s for s in states if s != NODATA), NODATA)
        elif rule == "any":
            state = UP if UP in states else NODATA if NODATA in states else DOWN
        else:
            raise ValueError(f"unknown rule {rule!r}")
        out.append(Span(left, right, state))
    return _compact(out)


def clip(timeline: Timeline, start: float, end: float) -> Timeline:
    return _compact(
        Span(max(s.start, start), min(s.end, end), s.state)
        for s in timeline
        if s.end > start and s.start < end
    )


def cut(timeline: Timeline, holes: Sequence[tuple[float, float]]) -> tuple[Timeline, Timeline]:
    """Split a timeline into what lies outside `holes` (maintenance windows) and inside them."""
    outside: list[Span] = []
    inside: list[Span] = []
    merged = sorted(holes)
    for span in timeline:
        cursor = span.start
        for h_start, h_end in merged:
            if h_end <= cursor or h_start >= span.end:
                continue
            if h_start > cursor:
                outside.append(Span(cursor, h_start, span.state))
            inside.append(Span(max(cursor, h_start), min(span.end, h_end), span.state))
            cursor = max(cursor, min(span.end, h_end))
        if cursor < span.end:
            outside.append(Span(cursor, span.end, span.state))
    return _compact(outside), _compact(inside)


def seconds_in(timeline: Timeline, state: State) -> float:
    return sum(s.seconds for s in timeline if s.state == state)


def runs(timeline: Timeline, state: State) -> list[tuple[float, float]]:
    """The (start, end) of every span in `state`."""
    return [(s.start, s.end) for s in timeline if s.state == state]
