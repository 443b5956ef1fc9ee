"""The least of a sliding window, for reading when things came: a frame's delay on the way
(arrival less its own time) is at least the path's, and more where it waited behind a
stalled loop or a busy link, so the least of the last few is the path's own."""

from __future__ import annotations

import collections


class SlidingMinimum:
    """push(value) → the least of the values pushed within the last `window` (amortised
    O(1)): the last `window` pushes, or, where each push says `at` what position (a time),
    those at positions within `window` before the newest."""

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self._window = window
        # (position, value): the least first, each behind it greater and newer
        self._least: collections.deque[tuple[float, float]] = collections.deque()
        self._count = 0

    def push(self, value: float, at: float | None = None) -> float:
        self._count += 1
        at = float(self._count) if at is None else at
        while self._least and self._least[-1][1] >= value:
            self._least.pop()
        self._least.append((at, value))
        while self._least[0][0] <= at - self._window:
            self._least.popleft()
        return self._least[0][1]

    def clear(self) -> None:
        self._least.clear()


class ArrivalClock:
    """When each frame of a received track came, read from its own time (its pts, in
    seconds): that time plus the least it has been behind it (arrival − own time) over the
    frames of the last `window_s` of its own time. A frame that waited out a stalled loop,
    and the burst after it, keep the moments they would have come at: stamped on arrival, a
    voice held up 0.25 s came 0.25 s late beside the video it was sent with. A frame with no
    time of its own keeps its arrival; times that go back (the sender began again), or a
    frame read as more than `max_wait_s` older than its arrival (times that do not follow
    the clock, or a stall that long), begin the count again from that arrival. The window is
    of time, not frames, so a video at 5 fps and a voice at 50 frames a second follow a
    slower path alike."""

    def __init__(self, window_s: float = 5.0, max_wait_s: float = 1.0) -> None:
        self._behind = SlidingMinimum(window_s)
        self._max_wait_s = max_wait_s
        self._last: float | None = None

    def stamp(self, own_s: float | None, arrived: float) -> float:
        """→ when the frame came (the clock of `arrived`), never later than `arrived`."""
        if own_s is None:
            return arrived
        if self._last is not None and own_s < self._last:
            self._behind.clear()
        self._last = own_s
        came = own_s + self._behind.push(arrived - own_s, own_s)
        if arrived - came > self._max_wait_s:
            self._behind.clear()
            came = own_s + self._behind.push(arrived - own_s, own_s)
        return came
