"""Reading when things came (streamer/timing.py)."""

from __future__ import annotations

import pytest

from streamer.timing import ArrivalClock, SlidingMinimum


def test_the_sliding_minimum_is_the_least_of_the_last_window_values() -> None:
    least = SlidingMinimum(3)
    values = [5.0, 3.0, 4.0, 6.0, 7.0, 2.0, 8.0, 9.0, 9.5]
    got = [least.push(v) for v in values]
    assert got == [min(values[max(0, i - 2):i + 1]) for i in range(len(values))]
    least.clear()
    assert least.push(10.0) == 10.0
    with pytest.raises(ValueError):
        SlidingMinimum(0)
    # by position: those within 1.0 before the newest
    timed = SlidingMinimum(1.0)
    got = [timed.push(v, at) for v, at in [(2.0, 0.0), (5.0, 0.5), (3.0, 0.9), (4.0, 1.4)]]
    assert got == [2.0, 2.0, 2.0, 3.0]  # at 1.4, 0.0 has left the window, 0.5 has too


def test_frames_that_waited_out_a_stall_keep_the_moments_they_would_have_come_at() -> None:
    """20 ms frames, 30 ms on the way (10 of jitter on some); the loop stalls and frames 5-9
    are all read at 0.45 s: each is stamped as its pts and the path say, not 0.45."""
    clock = ArrivalClock()
    arrivals = [0.05, 0.07, 0.10, 0.11, 0.13] + [0.45] * 5 + [0.25, 0.27]
    pts = [0.02 * i for i in range(12)]
    stamps = [clock.stamp(p, a) for p, a in zip(pts, arrivals, strict=True)]
    assert stamps[:5] == pytest.approx([0.05, 0.07, 0.09, 0.11, 0.13])
    assert stamps[5:10] == pytest.approx([0.15, 0.17, 0.19, 0.21, 0.23])
    assert all(s <= a for s, a in zip(stamps, arrivals, strict=True))
    assert clock.stamp(None, 0.9) == 0.9  # no pts: its arrival


def test_times_that_go_back_or_do_not_follow_the_clock_begin_the_count_again() -> None:
    clock = ArrivalClock(max_wait_s=1.0)
    assert clock.stamp(10.0, 0.05) == pytest.approx(0.05)
    assert clock.stamp(10.02, 0.07) == pytest.approx(0.07)
    assert clock.stamp(0.0, 0.10) == pytest.approx(0.10)  # the sender began again
    assert clock.stamp(0.02, 0.12) == pytest.approx(0.12)
    # pts that stand still while the clock runs: a frame read as more than 1 s older than
    # its arrival is stamped on arrival, and the count begins again from it
    stamps = [clock.stamp(0.04, 0.14 + 0.6 * i) for i in range(4)]
    assert stamps == pytest.approx([0.14, 0.14, 1.34, 1.34])


def test_a_path_that_got_slower_for_good_is_followed_within_the_window() -> None:
    """A video at 5 fps whose path takes 0.2 s longer from its 2nd second on: 5 s (of its
    own time) later, frames are stamped as they come again; counted in frames (250, as
    the voice's 5 s), it would have taken 50 s."""
    clock = ArrivalClock(window_s=5.0)
    stamps = {}
    for k in range(50):
        own = 0.2 * k
        stamps[k] = clock.stamp(own, own + (0.03 if k < 10 else 0.23))
    assert stamps[30] == pytest.approx(6.0 + 0.03)  # the fast frame at 1.8 s is in view
    assert stamps[35] == pytest.approx(7.0 + 0.23)
