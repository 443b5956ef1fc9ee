"""streamer.turn_limits: a head turns as far as its portrait's warp shows it, easing into
the limit, and a turn inside the limits is left as the driver made it."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.animate import AnimateOptions, Animator
from streamer.geometry import euler_to_rotation, rotation_to_euler
from streamer.motion import MotionConfig
from streamer.portrait import EnrollConfig, enroll_images
from streamer.renderer import RendererConfig
from streamer.turn_limits import (
    MIN_SCALE,
    TurnLimits,
    find_turn_limits,
    least_scale,
    soft_limit,
)
from streamer.video_io import read_image
from tests.helpers import rotation, turn_head


def test_a_turn_eases_into_its_limit_and_never_passes_it():
    reach = np.linspace(0.0, 5.0, 501)
    held = np.array([soft_limit(r, 0.7) for r in reach])
    assert np.array_equal(held[reach <= 0.7], reach[reach <= 0.7])  # short of the knee: as asked
    assert held.max() < 1.0
    assert (np.diff(held) > 0).all()  # the head still follows, ever slower ...
    assert np.abs(np.diff(held)).max() <= 0.01 + 1e-12  # ... and never jumps


def test_turns_are_held_against_the_limit_in_their_direction():
    # turning right 20°, up 20°, left 10°, down 30°, between them (the diagonals) 15°
    limits = TurnLimits((20.0, 15.0, 20.0, 15.0, 10.0, 15.0, 30.0, 15.0), (-15.0, 15.0))
    assert limits.reach(np.array([10.0, 0.0, 0.0])) == pytest.approx(0.5)
    assert limits.reach(np.array([-5.0, 0.0, 0.0])) == pytest.approx(0.5)
    assert limits.reach(np.array([0.0, -15.0, 0.0])) == pytest.approx(0.5)
    assert limits.reach(np.array([7.5 / np.sqrt(2), 7.5 / np.sqrt(2), 0.0])) == pytest.approx(0.5)
    assert limits.reach(np.array([0.0, 0.0, -7.5])) == pytest.approx(0.5)
    assert limits.reach(np.array([10.0, 0.0, 7.5])) == pytest.approx(np.sqrt(0.5))  # with a tilt
    between = limits.reach(np.array([20.0 * np.cos(0.3), 20.0 * np.sin(0.3), 0.0]))
    assert 1.0 < between < 20.0 / 15.0  # between right (20°) and the diagonal (15°)
    small = euler_to_rotation(3.0, -2.0, 1.0)
    assert limits.hold(small) is small
    yaw, pitch, roll = rotation_to_euler(limits.hold(euler_to_rotation(-40.0, 0.0, 0.0)))
    assert -10.0 < yaw < -9.0 and abs(pitch) < 1e-6 and abs(roll) < 1e-6
    both = np.array(rotation_to_euler(limits.hold(euler_to_rotation(-8.0, 16.0, 0.0))))
    assert limits.reach(both) < 1.0 and both[1] / both[0] == pytest.approx(-2.0)  # its way kept


def test_euler_angles_round_trip():
    for angles in [(10.0, -20.0, 30.0), (-40.0, 15.0, -5.0), (0.0, 0.0, 0.0)]:
        r = euler_to_rotation(*angles)
        assert np.allclose(r, rotation(*angles))  # the tests' (and the benchmark's) convention
        assert np.allclose(rotation_to_euler(r), angles)


def test_least_scale_says_how_far_a_map_stretches():
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float32)
    assert least_scale(np.dstack([xs, ys])) == pytest.approx(1.0)
    # each source column shown 3 × wide
    assert least_scale(np.dstack([xs / 3.0 + 5.0, ys])) == pytest.approx(1.0 / 3.0, rel=1e-3)
    c, s = np.cos(0.5), np.sin(0.5)  # turned, not stretched
    assert least_scale(np.dstack([c * xs - s * ys, s * xs + c * ys])) == pytest.approx(1.0)
    assert least_scale(np.dstack([np.abs(xs - 32.0), ys])) == 0.0  # folded over


def test_each_direction_is_searched_on_its_own():
    """A fake warp whose stretch grows with the turn, to a limit that differs each way:
    turning and nodding together inside an ellipse per quadrant, tilting on its own."""
    yaw_limit, pitch_limit, roll_limit = (12.0, 30.0), (20.0, 25.0), (17.0, 19.0)

    def scale(angles: np.ndarray) -> float:  # the "target" is the turn's angles
        yaw, pitch, roll = angles
        share = np.hypot(yaw / yaw_limit[yaw > 0], pitch / pitch_limit[pitch > 0])
        share = max(share, abs(roll) / roll_limit[roll > 0])
        return 1.0 - (1.0 - MIN_SCALE) * share

    limits = find_turn_limits(lambda r: np.array(rotation_to_euler(r)), scale)
    found = dict(zip(range(8), limits.turn, strict=True))
    for k, want in [(0, 30.0), (2, 25.0), (4, 12.0), (6, 20.0)]:  # right, up, left, down
        assert want - 1.5 <= found[k] <= want, (k, found[k])
    diagonal = 1.0 / np.hypot(np.cos(np.pi / 4) / 30.0, np.sin(np.pi / 4) / 25.0)
    assert diagonal - 1.5 <= found[1] <= diagonal
    assert -17.0 <= limits.roll[0] <= -15.5 and 17.5 <= limits.roll[1] <= 19.0


@pytest.fixture(scope="module")
def mona_lisa(data_dir):
    return enroll_images([read_image(data_dir / "portraits" / "mona_lisa.jpg")],
                         EnrollConfig(crop_size=256))


def _turned_targets(portrait, driver, turns, hold: bool) -> list[np.ndarray]:
    options = AnimateOptions(motion=MotionConfig(hold_turns=hold),
                             renderer=RendererConfig(name="warp"))
    animator = Animator(portrait, options)
    try:
        for _ in range(40):  # a still face: the neutral is taken
            animator.target_landmarks(driver)
        assert animator.calibrated
        return [animator.target_landmarks(turn_head(driver, *turn)) for turn in turns]
    finally:
        animator.close()


def test_a_portrait_turns_as_far_as_it_shows_a_turn(mona_lisa, astronaut_landmarks):
    """The Mona Lisa, turned by the driver 45° either way, tilted and nodded 40°, and turned
    30° while nodding or tilting 20°: with the turn held, no part of her picture is stretched
    past 1 / MIN_SCALE; as the driver turned, her face folded."""
    from streamer.renderer import WarpRenderer

    turns = [(45.0, 0.0, 0.0), (-45.0, 0.0, 0.0), (0.0, 40.0, 0.0), (0.0, -40.0, 0.0),
             (0.0, 0.0, 40.0), (0.0, 0.0, -40.0), (30.0, 20.0, 0.0), (-30.0, 20.0, 0.0),
             (30.0, -20.0, 0.0), (-30.0, 0.0, -20.0), (40.0, 30.0, 30.0)]
    warp = WarpRenderer(mona_lisa, RendererConfig(still_background=False))
    held = [warp.least_scale(t) for t in _turned_targets(mona_lisa, astronaut_landmarks,
                                                         turns, hold=True)]
    free = [warp.least_scale(t) for t in _turned_targets(mona_lisa, astronaut_landmarks,
                                                         turns, hold=False)]
    assert min(held) >= MIN_SCALE - 0.05, held
    assert min(free[:2]) < 0.05 and min(free[6:]) < 0.05, free  # as asked, her face folds
    small = [(5.0, -3.0, 2.0)]  # well inside every limit: as the driver did
    assert np.allclose(_turned_targets(mona_lisa, astronaut_landmarks, small, hold=True)[0],
                       _turned_targets(mona_lisa, astronaut_landmarks, small, hold=False)[0],
                       atol=1e-3)


def test_a_three_quarter_portrait_turns_less_towards_its_hidden_side(mona_lisa):
    animator = Animator(mona_lisa, AnimateOptions(renderer=RendererConfig(name="warp")))
    limits = animator.turn_limits
    animator.close()
    assert limits is not None
    right, left = limits.turn[0], limits.turn[4]  # turning (yaw) either way
    assert 6.0 < min(right, left) < 15.0 < 25.0 < max(right, left)
