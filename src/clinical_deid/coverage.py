"""Character spans covered so far, as sorted disjoint intervals.

Propagation and the coincidence check ask "which parts of this span are not taken yet" once
per mention; a note dense with mentions (a million characters of phone numbers) made a scan
over every span taken so far quadratic. Kept by hand: bisect over two sorted lists is all
it needs, and no well-kept interval library is a runtime dependency.
"""
from __future__ import annotations

import bisect
from typing import Iterable, List, Sequence, Tuple


class Coverage:
    """The union of character spans, kept as sorted disjoint intervals, so that a note dense
    with mentions (a million characters of phone numbers) is covered and queried in
    logarithmic time per span, not by scanning every span taken so far (quadratic)."""

    def __init__(self, spans: Iterable[Tuple[int, int]] = ()) -> None:
        self.starts: List[int] = []
        self.ends: List[int] = []
        for start, end in sorted(spans):
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        """Cover [start, end), merging it with the intervals it overlaps or touches."""
        if start >= end:
            return
        lo = bisect.bisect_left(self.ends, start)  # first interval ending at or after start
        hi = bisect.bisect_right(self.starts, end)  # intervals from lo to hi overlap or touch
        if lo < hi:
            start, end = min(start, self.starts[lo]), max(end, self.ends[hi - 1])
        self.starts[lo:hi], self.ends[lo:hi] = [start], [end]

    def uncovered(self, start: int, end: int) -> List[Tuple[int, int]]:
        """The parts of [start, end) outside every interval, in order."""
        pieces, pos = [], start
        i = bisect.bisect_right(self.ends, start)  # first interval ending after start
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > pos:
                pieces.append((pos, self.starts[i]))
            pos = max(pos, self.ends[i])
            i += 1
        if pos < end:
            pieces.append((pos, end))
        return pieces


def uncovered(start: int, end: int, taken: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """The parts of [start, end) that no span of `taken` covers, in order.

    start (int): Start of the span. end (int): Its end. taken (Sequence[Tuple[int, int]]): Spans.
    RETURNS (List[Tuple[int, int]]): The uncovered pieces.
    """
    return Coverage(taken).uncovered(start, end)
