"""Saying once that the neural renderer is too heavy for this computer (`stream`, `serve`).

A renderer that cannot keep up with the frames it is given shows as a jerky avatar, and
nothing said why. Counted against the frames given (the camera's, a sender's), not a nominal
rate: a camera that gives 12 a second in a dim room is not blamed on the renderer.
"""

from __future__ import annotations

from collections.abc import Callable

SLOW_SHARE = 0.8  # the avatar made from fewer of the frames given than this: too heavy
SLOW_REPORTS = 10  # ... over this many reports in a row (a second each): say so, once


def too_slow(made: int, given: int, source: str, command: str) -> str:
    """What to say: `made` of the `given` frames in the last second, from `source`."""
    return (f"the avatar is made from {made} of the {given} frames a second {source} gives "
            f"on this computer: `{command} --renderer warp` is lighter (on a 2-core CPU it "
            "keeps 30 frames a second where the neural renderer makes 20-26)")


class SlowHint:
    """Fed the running totals of frames given and made, a report a second (count); calls
    say(made, given), with the last second's, once: when fewer than SLOW_SHARE of those
    given were made for `reports` reports in a row."""

    def __init__(self, say: Callable[[int, int], None], reports: int = SLOW_REPORTS) -> None:
        self._say = say
        self._reports = reports
        self._last: tuple[int, int] | None = None  # (given, made) at the last report
        self._slow = 0  # reports in a row
        self.said = False

    def count(self, given: int, made: int) -> None:
        last, self._last = self._last, (given, made)
        if self.said or last is None:
            return
        given, made = given - last[0], made - last[1]
        self._slow = self._slow + 1 if given > 0 and made < SLOW_SHARE * given else 0
        if self._slow >= self._reports:
            self.said = True
            self._say(made, given)
