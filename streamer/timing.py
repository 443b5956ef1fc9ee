"""The least of a sliding window, for reading when things came: a frame's delay on the way
(arrival less its own time) is at least the path's, and more where it waited behind a
stalled loop or a busy link, so the least of the last few is the path's own."""

from __future__ import annotations

import collections


class SlidingMinimum:
    """push(value) → the least of the last `window` values pushed (amortised O(1))."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._window = window
        # (push number, value): the least first, each behind it greater and newer
        self._least: collections.deque[tuple[int, float]] = collections.deque()
        self._count = 0

    def push(self, value: float) -> float:
        self._count += 1
        while self._least and self._least[-1][1] >= value:
            self._least.pop()
        self._least.append((self._count, value))
        if self._least[0][0] <= self._count - self._window:
            self._least.popleft()
        return self._least[0][1]

    def clear(self) -> None:
        self._least.clear()


class ArrivalClock:
    """When each frame of a received track came, read from its own time (its pts, in
    seconds): that time plus the least it has been behind it (arrival − own time) over the
    last `window` frames. A frame that waited out a stalled loop, and the burst after it,
    keep the moments they would have come at: stamped on arrival, a voice held up 0.25 s
    came 0.25 s late beside the video it was sent with. A frame with no time of its own keeps
    its arrival; times that go back (the sender began again), or a frame read as more than
    `max_wait_s` older than its arrival (times that do not follow the clock, or a stall that
    long), begin the count again from that arrival."""

    def __init__(self, window: int = 250, max_wait_s: float = 1.0) -> None:
        self._behind = SlidingMinimum(window)
        self._max_wait_s = max_wait_s
        self._last: float | None = None

    def stamp(self, own_s: float | None, arrived: float) -> float:
        """→ when the frame came (the clock of `arrived`), never later than `arrived`."""
        if own_s is None:
            return arrived
        if self._last is not None and own_s < self._last:
            self._behind.clear()
        self._last = own_s
        came = own_s + self._behind.push(arrived - own_s)
        if arrived - came > self._max_wait_s:
            self._behind.clear()
            came = own_s + self._behind.push(arrived - own_s)
        return came
